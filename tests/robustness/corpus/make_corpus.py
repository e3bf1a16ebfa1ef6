"""Writes the regression corpus of issue 11's reproductions (run from the repository root):

    python tests/robustness/corpus/make_corpus.py

Every file is a small damaged input that once crashed, hung or was accepted as nonsense; the cases
and their expected errors are in ``tests/robustness/test_reproductions.py``. The decode traces are
edits of ``valid_decode_trace.jsonl`` (``memwall trace gen`` of one synthetic request); the request
traces are the first rows of the shipped Azure and Splitwise slices (see traces/README.md for their
sources and licences) with one value changed.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def lines() -> list[dict]:
    return [json.loads(x) for x in (HERE / "valid_decode_trace.jsonl").read_text().splitlines()]


def dump(name: str, records: list) -> None:
    (HERE / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def main() -> None:
    (HERE / "non_utf8_system.toml").write_bytes(b'[system]\nname = "\xff"\n')
    valid = lines()
    header, request, *iterations = valid
    dump(
        "decode_arrival_1e400.jsonl",
        [header, json.dumps(request).replace('"arrival_ps": 0', '"arrival_ps": 1e400'), *iterations],
    )
    dump("decode_mapping_string.jsonl", [{**header, "mapping": "tp=8"}, request, *iterations])
    dump("decode_huge_context.jsonl", [header, {**request, "prompt_tokens": 10**9}, *iterations])
    dump("decode_duplicate_id.jsonl", [header, request, request, *iterations])
    dump("decode_float_tokens.jsonl", [header, {**request, "output_tokens": 1.7}, *iterations])
    dump("decode_string_tokens.jsonl", [header, {**request, "output_tokens": "5"}, *iterations])
    dump("decode_bool_tokens.jsonl", [header, {**request, "output_tokens": True}, *iterations])
    twice = {**iterations[0], "entries": iterations[0]["entries"] * 2}
    dump("decode_prefilled_twice.jsonl", [header, request, twice, *iterations[1:]])
    extra = [
        {**iterations[-1], "index": iterations[-1]["index"] + k, "entries": [[0, "d", 1, 35 + k, 1]]}
        for k in (1, 2)
    ]
    dump("decode_too_many_outputs.jsonl", [header, request, *iterations, *extra])
    dump("decode_header_only.jsonl", [header])
    whole = gzip.compress("".join(json.dumps(r) + "\n" for r in valid).encode(), mtime=0)
    (HERE / "decode_truncated.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    azure = (REPO / "traces/azure_conv_200.csv").read_text().splitlines()[:4]
    split = (REPO / "traces/splitwise_conv_200.csv").read_text().splitlines()[:4]
    (HERE / "azure_year_9999.csv").write_text(
        "\n".join([azure[0], azure[1], "9999-12-31 23:59:59.0000000,396,109"]) + "\n"
    )
    (HERE / "azure_200k_prompt.csv").write_text(
        "\n".join([azure[0], azure[1].replace(",374,", ",200000,")]) + "\n"
    )
    (HERE / "splitwise_arrived_1e30.csv").write_text("\n".join([split[0], split[1], "1e30,396,109"]) + "\n")
    (HERE / "empty.csv").write_text("")
    (HERE / "header_only.csv").write_text(azure[0] + "\n")
    base = '[sweep]\nname = "r"\n[base]\nsystem = "default"\nmodel = "llama-3.1-8b"\ncontext = 16\n'
    (HERE / "sweep_steps_0.toml").write_text(base + "steps = 0\n[grid]\nbatch = [1]\n")
    (HERE / "sweep_batch_0.toml").write_text(base + "steps = 1\n[grid]\nbatch = [0]\n")
    (HERE / "sweep_scalar_sweep.toml").write_text("sweep = 5\n[grid]\nbatch = [1]\n")
    (HERE / "sweep_scalar_grid.toml").write_text("grid = 5\n" + base + "steps = 1\n")
    (HERE / "sweep_valid.toml").write_text(base + "steps = 1\n[grid]\nbatch = [1]\n")
    system = (REPO / "topologies/default.toml").read_text().replace("tp = 8 ", "tp = 3 ")
    (HERE / "system_mapping_tp3.toml").write_text(system)
    config = json.loads((HERE / "tiny_llama_config.json").read_text())
    (HERE / "config_100000_layers.json").write_text(json.dumps({**config, "num_hidden_layers": 100_000}))
    report = HERE / "report_summary_list"
    report.mkdir(exist_ok=True)
    (report / "summary.json").write_text("[1, 2, 3]\n")
    (report / "config.json").write_text("{}\n")


if __name__ == "__main__":
    main()
