"""Hypothesis strategies for memwall's eleven input kinds: a valid input, then damage.

Each strategy draws a :class:`Case`: the files to write (name -> bytes), the command line (with
``{name}`` standing for a file's path and ``{tmp}`` for the case's directory) and how to judge a
successful answer. Damage is what a hostile user or a broken pipeline produces: a value of the
wrong type, sign, size or finiteness; a missing, duplicated or unknown key; a truncated, binary,
compressed, non-UTF-8 or empty file; rows out of order; lines without end.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]

# -- damage --------------------------------------------------------------------------------------------
BAD_TOML_VALUES = [
    "-1",
    "0",
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "-inf",
    "1e30",
    "99999999999999999999999",
    "1.5",
    "1.7",
    "true",
    '""',
    '"abc"',
    '"1e400GB"',
    '"1e400"',
    '"-3us"',
    '"0B"',
    '"1e-30s"',
    '"é\u00ff"',
    "[]",
    "[1, 2]",
    "{}",
    "{ a = 1 }",
    "9223372036854775807",
    "-9223372036854775808",
    '"5"',
    '"1 TB/s"',
    '"3.5"',
    '"1e23"',
    "100000",
    "1000000000",
]
QUICK_TOML_VALUES = [v for v in BAD_TOML_VALUES if v not in ("100000", "1000000000")]
"""For inputs where a large valid count (decode steps, batch) is a long but correct run."""
BAD_CELLS = [
    "",
    "-5",
    "0",
    "1e30",
    "abc",
    "nan",
    "inf",
    "-inf",
    "1.7",
    "99999999999",
    "1e400",
    "9999-12-31 23:59:59.0000000",
    "2023-13-45 99:99:99",
    "0001-01-01 00:00:00",
    "1000000000",
    '"',
    "2023-11-16",
    "true",
    " 5 ",
]
BAD_JSON_VALUES: list[Any] = [
    None,
    -1,
    0,
    1e30,
    "5",
    True,
    False,
    1.7,
    [],
    {},
    "abc",
    10**12,
    10**30,
    float("nan"),
    float("inf"),
    -1e400,
    "1e400",
    [1, 2],
    {"a": 1},
    2**63,
    "tp=8",
]
BAD_BYTES = [b"\xff\xfe", b"\x00", b"\x1f\x8b\x08", b"\xc3\x28", b"\r", b"\x80abc"]
_KEY_LINE = re.compile(rb"^(\s*[A-Za-z0-9_.\"-]+\s*=\s*)(.*)$")


@st.composite
def damaged_bytes(draw: Any, data: bytes) -> bytes:
    """Whole-file damage: truncation, foreign bytes, compression, another encoding, emptiness."""
    how = draw(
        st.sampled_from(["truncate", "insert", "gzip", "gzip-truncate", "utf16", "latin1", "empty", "nul"])
    )
    if how == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if how == "insert":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "gzip-truncate":
        z = gzip.compress(data, mtime=0)
        return z[: draw(st.integers(1, max(1, len(z) - 1)))]
    if how == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16")
    if how == "latin1":
        return data.replace(b"e", b"\xe9", 3)
    if how == "nul":
        return data.replace(b"\n", b"\x00\n", 2)
    return b""


@st.composite
def damaged_toml(draw: Any, text: bytes, values: list[str] | None = None) -> bytes:
    """One to three line edits (a value replaced, a line dropped or doubled, an unknown key), or
    whole-file damage."""
    if draw(st.integers(0, 9)) == 0:
        return draw(damaged_bytes(text))
    lines = text.split(b"\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["value", "value", "value", "drop", "double", "unknown", "table"]))
        m = _KEY_LINE.match(lines[i])
        if how == "value" and m:
            lines[i] = m.group(1) + draw(st.sampled_from(values or BAD_TOML_VALUES)).encode()
        elif how == "drop":
            del lines[i]
        elif how == "double":
            lines.insert(i, lines[i])
        elif how == "unknown":
            lines.insert(i, b"unknown_key = 1")
        elif how == "table":
            lines.insert(i, draw(st.sampled_from([b"[unknown]", b"[chip]", b"[[cells]]", b"[system]"])))
        if not lines:
            lines = [b""]
    return b"\n".join(lines)


@st.composite
def damaged_csv(draw: Any, text: bytes) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(damaged_bytes(text))
    rows = [r.split(b",") for r in text.rstrip(b"\n").split(b"\n")]
    for _ in range(draw(st.integers(1, 3))):
        how = draw(
            st.sampled_from(
                ["cell", "cell", "cell", "drop", "double", "swap", "column", "header-only", "long"]
            )
        )
        i = draw(st.integers(0, len(rows) - 1))
        if how == "cell" and rows[i]:
            j = draw(st.integers(0, len(rows[i]) - 1))
            rows[i][j] = draw(st.sampled_from(BAD_CELLS)).encode()
        elif how == "drop" and len(rows) > 1:
            del rows[i]
        elif how == "double":
            rows.insert(i, list(rows[i]))
        elif how == "swap" and len(rows) > 2:
            k = draw(st.integers(1, len(rows) - 1))
            rows[i], rows[k] = rows[k], rows[i]
        elif how == "column":
            rows[i] = rows[i] + [b"7"]
        elif how == "header-only":
            rows = rows[:1]
        elif how == "long":
            rows[i] = rows[i] + [b"9" * draw(st.sampled_from([10_000, 2_000_000]))]
    return b"\n".join(b",".join(r) for r in rows) + b"\n"


@st.composite
def damaged_json_value(draw: Any, doc: Any) -> Any:
    """``doc`` (a JSON object) with a key set to a bad value, dropped or added."""
    if not isinstance(doc, dict) or not doc:
        return draw(st.sampled_from(BAD_JSON_VALUES))
    doc = json.loads(json.dumps(doc))
    path = []
    node = doc
    while isinstance(node, dict) and node:  # sometimes go down into a nested object
        key = draw(st.sampled_from(sorted(node)))
        path.append(key)
        if not isinstance(node[key], dict) or not draw(st.booleans()):
            break
        node = node[key]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["value", "value", "value", "drop", "add"]))
    if how == "value":
        parent[path[-1]] = draw(st.sampled_from(BAD_JSON_VALUES))
    elif how == "drop":
        del parent[path[-1]]
    else:
        parent["unknown_key"] = draw(st.sampled_from(BAD_JSON_VALUES))
    return doc


@st.composite
def damaged_jsonl(draw: Any, text: bytes) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(damaged_bytes(text))
    lines = [json.loads(x) for x in text.decode().splitlines() if x.strip()]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["value", "value", "value", "drop", "double", "swap", "garbage"]))
        if how == "value":
            lines[i] = draw(damaged_json_value(lines[i]))
        elif how == "drop" and len(lines) > 1:
            del lines[i]
        elif how == "double":
            lines.insert(i, lines[i])
        elif how == "swap" and len(lines) > 2:
            k = draw(st.integers(1, len(lines) - 1))
            lines[i], lines[k] = lines[k], lines[i]
        elif how == "garbage":
            lines[i] = "{not json"
    out = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    return out.encode()


# -- the eleven input kinds -------------------------------------------------------------------------------
@dataclass
class Case:
    kind: str
    files: dict[str, bytes]
    argv: list[str]
    check: str  # how to judge exit 0: run_json, json, text, sweep, report, none


RUN_TINY = ["--batch", "1", "--context", "16", "--steps", "1", "--json"]


def _read(path: str) -> bytes:
    return (REPO / path).read_bytes()


def _head(path: str, lines: int) -> bytes:
    return b"\n".join(_read(path).split(b"\n")[:lines]) + b"\n"


@st.composite
def system_toml(draw: Any) -> Case:
    base = draw(st.sampled_from(["topologies/default.toml", "topologies/mobile.toml"]))
    data = draw(damaged_toml(_read(base)))
    model = "llama-3.1-8b"
    return Case(
        "system TOML",
        {"system.toml": data},
        ["run", "{system.toml}", "--model", model, *RUN_TINY],
        "run_json",
    )


@st.composite
def topology_toml(draw: Any) -> Case:
    base = draw(st.sampled_from(["topologies/ring8.toml", "topologies/torus4x4.toml", "topologies/fc8.toml"]))
    data = draw(damaged_toml(_read(base)))
    argv = [
        "noc",
        "--topology",
        "{topo.toml}",
        "--rate",
        "0.05",
        "--warmup",
        "50",
        "--measure",
        "200",
        "--json",
    ]
    return Case("topology TOML", {"topo.toml": data}, argv, "json")


@st.composite
def request_trace(draw: Any) -> Case:
    base, fmt = draw(
        st.sampled_from(
            [
                ("traces/azure_conv_200.csv", "azure"),
                ("traces/splitwise_conv_200.csv", "splitwise"),
                ("traces/mooncake_conv_200.jsonl", "mooncake"),
            ]
        )
    )
    head = _head(base, 5)
    data = draw(damaged_jsonl(head) if fmt == "mooncake" else damaged_csv(head))
    name = "trace" + Path(base).suffix
    argv = ["run", "default", "{" + name + "}", "--limit", "3", "--json"]
    if draw(st.booleans()):
        argv += ["--format", fmt]
    return Case("request trace", {name: data}, argv, "run_json")


@st.composite
def decode_trace(draw: Any, base: bytes) -> Case:
    plain = gzip.decompress(base)
    data = draw(damaged_jsonl(plain))
    if draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
        name = "trace.jsonl.gz"
    else:
        name = "trace.jsonl"
    return Case("decode trace", {name: data}, ["run", "default", "{" + name + "}", "--json"], "run_json")


TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "vocab_size": 1000,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}


@st.composite
def hf_config(draw: Any) -> Case:
    doc = draw(damaged_json_value(TINY_CONFIG)) if draw(st.integers(0, 7)) else TINY_CONFIG
    data = (
        json.dumps(doc).encode()
        if draw(st.integers(0, 9))
        else draw(damaged_bytes(json.dumps(TINY_CONFIG).encode()))
    )
    return Case(
        "HF config.json",
        {"config.json": data},
        ["run", "default", "--model", "{config.json}", *RUN_TINY],
        "run_json",
    )


SWEEP = b"""[sweep]
name = "fuzz"
[base]
system = "default"
model = "llama-3.1-8b"
context = 16
steps = 1
[grid]
batch = [1, 2]
"""


@st.composite
def sweep_spec(draw: Any) -> Case:
    data = draw(damaged_toml(SWEEP, QUICK_TOML_VALUES))
    argv = ["sweep", "{sweep.toml}", "--workers", "0", "--out", "{tmp}/out"]
    return Case("sweep spec", {"sweep.toml": data}, argv, "sweep")


DEVICE = b"""[device]
kind = "hbf"
preset = "hbf-gen1"
[device.params]
tR = "40us"
channels = 4
"""


@st.composite
def device_toml(draw: Any) -> Case:
    base = draw(
        st.sampled_from(
            [
                DEVICE,
                DEVICE.replace(b'"hbf"', b'"dram3d"')
                .replace(b"hbf-gen1", b"hbm3")
                .replace(b'tR = "40us"', b'tRCD = "14ns"'),
            ]
        )
    )
    data = draw(damaged_toml(base))
    argv = ["membench", "--device", "{device.toml}", "--bytes", "64KiB", "--json"]
    return Case("device TOML", {"device.toml": data}, argv, "json")


SET_KEYS = [
    "chip.compute.peak_bf16",
    "chip.compute.sram",
    "chip.compute.gemm_fixed",
    "chip.compute.units",
    "chip.memory.hbm.stacks",
    "chip.memory.hbm.tsv_rate",
    "chip.memory.hbm.fidelity",
    "chip.memory.hbm.channels",
    "chip.memory.hbm.prefetch.window",
    "chip.memory.hbm.prefetch.buffer",
    "fabric.clock",
    "fabric.flit_bytes",
    "fabric.inject_latency",
    "fabric.link_latency",
    "fabric.collective_launch.8",
    "fabric.router.vcs",
    "mapping.tp",
    "mapping.pp",
    "mapping.ep",
    "mapping.dp",
    "mapping.weights",
    "mapping.kv",
    "mapping.compute",
    "mapping.weight_dtype",
    "mapping.kv_budget",
    "mapping.context_limit",
    "tp",
    "weight_dtype",
    "driver.collectives",
    "driver.max_iterations",
    "batching.max_batch",
    "batching.policy",
    "software",
    "software.iteration",
    "prefetch_window",
    "prefetch_windw",
    "chip.memory.nope.stacks",
    "cost.chip_usd",
    "system.chips",
    "",
    "chip..compute",
    "mapping",
    "chip.compute",
]
SET_VALUES = [v.strip('"') for v in BAD_TOML_VALUES] + [
    "8",
    "fp8",
    "hbm",
    "none",
    "simulated",
    "near_memory",
    "2",
    "4",
]


@st.composite
def set_override(draw: Any) -> Case:
    sets = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(SET_KEYS))
        value = draw(st.sampled_from(SET_VALUES))
        sets += ["--set", draw(st.sampled_from([f"{key}={value}", key, f"={value}", f"{key}=={value}"]))]
    return Case("--set", {}, ["run", "default", *RUN_TINY, *sets], "run_json")


FLAGS: dict[str, list[str]] = {
    "run": [
        "--model",
        "--batch",
        "--context",
        "--steps",
        "--seed",
        "--limit",
        "--format",
        "--out",
        "--timeline",
        "--json",
    ],
    "mappings": ["--model", "--batch", "--context", "--json"],
    "membench": [
        "--device",
        "--pattern",
        "--request-size",
        "--concurrency",
        "--bytes",
        "--write-ratio",
        "--fidelity",
        "--seed",
        "--json",
    ],
    "noc": [
        "--topology",
        "--k",
        "--n",
        "--p",
        "--link-latency",
        "--vcs",
        "--vc-buffer",
        "--rate",
        "--sweep",
        "--packet-flits",
        "--warmup",
        "--measure",
        "--drain",
        "--seed",
        "--json",
    ],
    "collective": ["--bytes", "--json"],
    "describe": [],
}
FLAG_VALUES = [
    "0",
    "-1",
    "1",
    "3",
    "1e400",
    "1e9",
    "99999999999",
    "nan",
    "abc",
    "",
    "4KiB",
    "-4KiB",
    "1e-9:1:1e-9",
    "0:1:0",
    "mesh",
    "hbm9",
    "hbf-gen1",
    "fp8",
    "/dev/zero",
    "/nonexistent",
    ".",
    "2",
    "1.5",
    "seq",
]
SAFE = {  # values that keep a run that succeeds short
    "--bytes": "64KiB",
    "--measure": "200",
    "--warmup": "50",
    "--drain": "200",
    "--k": "4",
    "--steps": "1",
    "--context": "16",
    "--batch": "1",
    "--limit": "2",
}


@st.composite
def cli_flags(draw: Any) -> Case:
    cmd = draw(st.sampled_from(sorted(FLAGS)))
    argv = [cmd]
    if cmd == "describe":
        argv.append(draw(st.sampled_from(["hbm3", "memory", "preset", "nothing", "", "buffer", "software"])))
    for flag in sorted(SAFE):
        if flag in FLAGS[cmd] and flag not in ("--limit",):
            argv += [flag, SAFE[flag]]
    for _ in range(draw(st.integers(1, 3))):
        flag = draw(st.sampled_from(FLAGS[cmd] or ["--json"]))
        if flag == "--json":
            argv.append(flag)
            continue
        argv += [flag, draw(st.sampled_from(FLAG_VALUES))]
        if flag in ("--out", "--timeline") and argv[-1] not in ("", "/nonexistent", "/dev/zero"):
            argv[-1] = "{tmp}/" + (argv[-1].strip("/.") or "o")
    check = "run_json" if cmd == "run" and "--json" in argv else ("json" if "--json" in argv else "text")
    if cmd == "run" and "--batch" not in argv:
        argv += ["--batch", "1", "--context", "16", "--steps", "1"]
    return Case("CLI flags", {}, argv, check if cmd != "describe" else "text")


@st.composite
def synthetic_toml(draw: Any) -> Case:
    data = draw(damaged_toml(_read("traces/synthetic_poisson.toml").replace(b"count = 16", b"count = 3")))
    argv = [
        "trace",
        "gen",
        "--model",
        "llama-3.1-8b",
        "--requests",
        "{synthetic.toml}",
        "--format",
        "synthetic",
        "--system",
        "default",
        "--out",
        "{tmp}/t.jsonl.gz",
        "--json",
    ]
    return Case("synthetic TOML", {"synthetic.toml": data}, argv, "json")


REPORT_FILES = [
    "summary.json",
    "config.json",
    "iterations.csv",
    "requests.csv",
    "stats.json",
    "ops.csv",
    "blame.csv",
]


@st.composite
def report_dir(draw: Any, run_files: dict[str, bytes]) -> Case:
    files = dict(run_files)
    name = draw(st.sampled_from(REPORT_FILES))
    how = draw(st.sampled_from(["damage", "drop", "list", "json"]))
    if how == "drop":
        files.pop(name, None)
    elif how == "list" and name.endswith(".json"):
        files[name] = b"[1, 2, 3]"
    elif how == "json" and name.endswith(".json"):
        files[name] = json.dumps(draw(damaged_json_value(json.loads(files[name])))).encode()
    elif name.endswith(".csv"):
        files[name] = draw(damaged_csv(files[name]))
    else:
        files[name] = draw(damaged_bytes(files[name]))
    return Case(
        "report directory", {f"run/{k}": v for k, v in files.items()}, ["report", "{tmp}/run"], "report"
    )
