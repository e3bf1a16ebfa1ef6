"""Bad input to every file reader is one ConfigError naming the file (and line), never a traceback.

Each case builds a bad file in ``tmp_path`` and checks that the error names the file (and the line
and key where there is one), says what was expected, stays on one line and does not copy the
file's content (a marker string in each file must not appear in the message). A few cases go
through the CLI: exit code 2 and one line on stderr.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import time
from pathlib import Path

import pytest

from sim.cli import main
from sim.core.errors import ConfigError
from sim.core.limits import MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_TOKENS
from sim.core.tomlfile import read_toml
from sim.model.config import load_model_config, read_json
from sim.requests.readers import guess_format, read_trace
from sim.requests.synthetic import MIN_RATE, ArrivalParams, SyntheticParams, as_generator, synthetic_requests
from sim.serving.decode_trace import FORMAT, is_decode_trace, read_decode_trace

MARK = "SECRETMARK"
"""Put in bad files; an error message must never contain it."""


def refused(fn, *args, where: str | Path, needle: str, **kwargs) -> str:
    """``fn(*args)`` raises a one-line ConfigError located at ``where`` that contains ``needle``."""
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    assert time.monotonic() - start < 10, "refusing bad input must be quick"
    msg = str(info.value)
    if str(where).endswith(": line"):  # a line whose number depends on compression
        assert re.match(re.escape(str(where)) + r" \d+: ", msg), msg
    else:
        assert msg.startswith(f"{where}:"), msg
    assert needle in msg, msg
    assert "\n" not in msg and MARK not in msg, msg
    return msg


def cli_refuses(capsys, argv: list[str], needle: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("memwall: error:"), err
    assert needle in err and MARK not in err, err
    return err


# -- TOML ------------------------------------------------------------------------------------------


def test_toml_non_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "x.toml"
    path.write_bytes(b'[system]\nname = "\xff' + MARK.encode() + b'"\n')
    refused(
        read_toml,
        path,
        where=f"{path}: line 2",
        needle="expected a UTF-8 TOML file, found bytes that are not UTF-8",
    )


@pytest.mark.parametrize(
    ("compress", "kind"),
    [
        (gzip.compress, "gzip-compressed data"),
        (bz2.compress, "bzip2-compressed data"),
        (lzma.compress, "xz-compressed data"),
    ],
)
def test_toml_compressed_is_refused(tmp_path, compress, kind):
    path = tmp_path / "system.toml"
    path.write_bytes(compress(f'[system]\nname = "{MARK}"\n'.encode()))
    refused(read_toml, path, where=path, needle=f"expected a UTF-8 TOML file, found {kind}")


def test_toml_binary_nul_bytes(tmp_path):
    path = tmp_path / "b.toml"
    path.write_bytes(f'a = 1\nb = "{MARK}\x00"\n'.encode())
    refused(read_toml, path, where=f"{path}: line 2", needle="found binary data")


def test_toml_directory_and_pipe(tmp_path):
    folder = tmp_path / "d.toml"
    folder.mkdir()
    refused(read_toml, folder, where=folder, needle="expected a file, found a directory")
    fifo = tmp_path / "p.toml"
    os.mkfifo(fifo)
    refused(read_toml, fifo, where=fifo, needle="expected a regular file, found a pipe")  # no hang on open


def test_toml_larger_than_max_file_bytes(tmp_path):
    path = tmp_path / "huge.toml"
    with path.open("wb") as fh:  # sparse: takes no disk, and is refused by its size before reading
        fh.truncate(MAX_FILE_BYTES + 1)
    refused(read_toml, path, where=path, needle="MAX_FILE_BYTES")


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ("[fabric]\nclock = inf\n", "fabric.clock", "expected a finite number, found inf"),
        ("[fabric]\nclock = 1e400\n", "fabric.clock", "expected a finite number, found inf"),
        ("[fabric]\nclock = nan\n", "fabric.clock", "expected a finite number, found nan"),
        ("[a]\nb = [1, 99999999999999999999999]\n", "a.b[1]", "fits in 64 bits"),
    ],
)
def test_toml_non_finite_and_huge_numbers(tmp_path, text, key, needle):
    path = tmp_path / "n.toml"
    path.write_text(f"# {MARK}\n{text}")
    refused(read_toml, path, where=f"{path}: {key}", needle=needle)


def test_cli_gzip_trace_given_as_system(tmp_path, capsys):
    trace = tmp_path / "my-trace.jsonl.gz"
    trace.write_bytes(gzip.compress(f'{{"record": "header", "x": "{MARK}"}}\n'.encode()))
    err = cli_refuses(capsys, ["run", str(trace)], "expected a UTF-8 TOML file, found gzip-compressed data")
    assert str(trace) in err


def test_cli_non_utf8_system(tmp_path, capsys):
    path = tmp_path / "x.toml"
    path.write_bytes(b'[system]\nname = "\xff' + MARK.encode() + b'"\n')
    err = cli_refuses(capsys, ["mappings", str(path)], "not UTF-8")
    assert f"{path}: line 2" in err


# -- model config.json -----------------------------------------------------------------------------

LLAMA = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 100,
    "note": MARK,
}


def _config(tmp_path: Path, text: str | bytes, name: str = "config.json") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_config_json_non_utf8_and_compressed(tmp_path):
    bad = _config(tmp_path, json.dumps(LLAMA).encode().replace(b"SECRET", b"\xff\xfe"), "bad.json")
    refused(load_model_config, bad, where=f"{bad}: line 1", needle="expected a UTF-8 JSON file")
    packed = _config(tmp_path, gzip.compress(json.dumps(LLAMA).encode()), "packed.json")
    refused(load_model_config, packed, where=packed, needle="found gzip-compressed data")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (f'["{MARK}"]', "expected a JSON object at the top level, found an array"),
        (f'"{MARK}"', "expected a JSON object at the top level, found a string"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a": ' + "9" * 5000 + "}", "at most 4300 digits"),
    ],
)
def test_config_json_not_an_object(tmp_path, text, needle):
    path = _config(tmp_path, text)
    refused(read_json, path, where=path, needle=needle)


@pytest.mark.parametrize(
    ("key", "raw", "needle"),
    [
        ("num_hidden_layers", "NaN", "expected an integer >= 1, found nan"),
        ("num_hidden_layers", "Infinity", "expected an integer >= 1, found inf"),
        ("hidden_size", "1e400", "expected an integer >= 1, found inf"),
        ("hidden_size", '"64"', "found '64'"),
        ("num_hidden_layers", "true", "found True"),
        ("num_attention_heads", "1.7", "found 1.7"),
        ("num_hidden_layers", "100000", "<= 10,000 (MAX_LAYERS)"),
        ("num_hidden_layers", "1e300", "(MAX_LAYERS)"),
        ("hidden_size", "1000000000000", "(MAX_WIDTH)"),
        ("vocab_size", "10000000000", "(MAX_VOCAB)"),
        ("intermediate_size", "-128", "expected an integer >= 1, found -128"),
        ("hidden_size", "0", "expected an integer >= 1, found 0"),
        ("num_key_value_heads", "[" + ", ".join(["1"] * 50) + "]", "a list of 50 items"),
    ],
)
def test_config_json_bad_values_name_the_key(tmp_path, key, raw, needle):
    text = json.dumps(LLAMA).replace(f'"{key}": {LLAMA[key]}', f'"{key}": {raw}')
    path = _config(tmp_path, text)
    refused(load_model_config, path, where=f"{path}: {key}", needle=needle)


def test_config_json_long_string_is_not_copied(tmp_path):
    path = _config(tmp_path, json.dumps({**LLAMA, "torch_dtype": MARK * 1000}))
    refused(load_model_config, path, where=f"{path}: torch_dtype", needle="a string of 10,000 characters")


def test_cli_model_with_too_many_layers(tmp_path, capsys):
    path = _config(tmp_path, json.dumps({**LLAMA, "num_hidden_layers": 100_000}))
    cli_refuses(capsys, ["mappings", "--model", str(path)], f"{path}: num_hidden_layers")


# -- decode traces ---------------------------------------------------------------------------------

HEADER = {"record": "header", "format": FORMAT, "version": 1, "model": "llama-3.1-8b", "note": MARK}
REQ = {"record": "request", "id": 0, "arrival_ps": 0, "prompt_tokens": 4, "output_tokens": 2}
IT = {"record": "iteration", "index": 0, "not_before_ps": 0, "entries": [[0, "p", 4, 4, 1]]}


def _trace(tmp_path: Path, lines: list, name: str = "t.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.mark.parametrize(
    ("lines", "line", "key", "needle"),
    [
        (
            [
                HEADER,
                '{"record": "request", "id": 0, "arrival_ps": 1e400, "prompt_tokens": 4, "output_tokens": 2}',
            ],
            2,
            None,
            "expected finite numbers",
        ),
        ([HEADER, '{"record": "request", "id": 0, "arrival_ps": NaN}'], 2, None, "expected finite numbers"),
        ([HEADER, REQ, "{" + MARK], 3, None, "malformed JSON"),
        ([{**HEADER, "mapping": "tp=8"}, REQ, IT], 1, "mapping", "expected an object such as"),
        ([{**HEADER, "mapping": {"tp": 0}}, REQ, IT], 1, "mapping.tp", "expected a whole number in 1.."),
        ([{**HEADER, "mapping": {"tpp": 2}}, REQ, IT], 1, "mapping.tpp", "expected keys tp, pp, ep, dp"),
        ([{**HEADER, "version": True}, REQ, IT], 1, "version", "expected version 1, found True"),
        ([{**HEADER, "model": 7}, REQ, IT], 1, "model", "expected a model name"),
        ([HEADER, {**REQ, "prompt_tokens": 10**9}, IT], 2, "prompt_tokens", "(MAX_TOKENS)"),
        ([HEADER, {**REQ, "arrival_ps": 2**63}, IT], 2, "arrival_ps", "(MAX_SIM_PS)"),
        ([HEADER, {**REQ, "arrival_ps": -1}, IT], 2, "arrival_ps", ">= 0"),
        ([HEADER, REQ, REQ, IT], 3, "id", "expected each request id once"),
        ([HEADER, {**REQ, "prompt_tokens": 1.7}, IT], 2, "prompt_tokens", "JSON integer), found 1.7"),
        ([HEADER, {**REQ, "prompt_tokens": "5"}, IT], 2, "prompt_tokens", "JSON integer), found '5'"),
        ([HEADER, {**REQ, "output_tokens": True}, IT], 2, "output_tokens", "JSON integer), found True"),
        ([HEADER, {**REQ, "id": True}, IT], 2, "id", "found True"),
        (
            [HEADER, REQ, {**IT, "entries": [[0, "p", 2, 2, 0], [0, "p", 2, 4, 1]]}],
            3,
            "entries[1]",
            "at most once per iteration",
        ),
        (
            [HEADER, REQ, IT, {**IT, "entries": [[0, "d", 1, 5, 1]]}, {**IT, "entries": [[0, "d", 1, 6, 1]]}],
            5,
            "entries[0]",
            "emit at most its 2 output tokens",
        ),
        ([HEADER, REQ, {**IT, "entries": [[0, "p", 4, 7, 1]]}], 3, "entries[0]", "expected context <= 6"),
        ([HEADER, REQ, {**IT, "entries": [[True, "p", 4, 4, 1]]}], 3, "entries[0]", "found True"),
        ([HEADER, REQ, {**IT, "entries": [[0, "p", 4, 4, True]]}], 3, "entries[0]", "emits 0/1"),
        ([HEADER, REQ, {**IT, "not_before_ps": 2**62 + 1}], 3, "not_before_ps", "(MAX_SIM_PS)"),
        ([HEADER, REQ, {**IT, "index": 1.5}], 3, "index", "found 1.5"),
        ([HEADER, {"record": "bogus"}], 2, "record", "expected record = request or iteration"),
        ([{"record": "header", "format": MARK}], 1, None, "header first"),
    ],
)
def test_decode_trace_bad_records(tmp_path, lines, line, key, needle):
    path = _trace(tmp_path, lines)
    where = f"{path}: line {line}" + (f": {key}" if key else "")
    refused(read_decode_trace, path, where=where, needle=needle)


@pytest.mark.parametrize("lines", [[HEADER], [HEADER, REQ], [HEADER, "", ""]])
def test_decode_trace_without_iterations(tmp_path, lines):
    path = _trace(tmp_path, lines)
    refused(read_decode_trace, path, where=path, needle="expected at least one iteration record, found none")


def test_decode_trace_truncated_gzip(tmp_path):
    body = "".join(json.dumps(x) + "\n" for x in [HEADER, *({**REQ, "id": i} for i in range(3000))])
    packed = gzip.compress(body.encode())
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    msg = refused(read_decode_trace, path, where=f"{path}: line", needle="truncated or corrupt gzip")
    assert "Error -3" not in msg and "b'" not in msg


def test_decode_trace_gzip_named_by_content_not_suffix(tmp_path):
    path = tmp_path / "t.jsonl"  # gzip bytes without .gz: read as gzip, errors are about the records
    path.write_bytes(gzip.compress((json.dumps(HEADER) + "\n").encode()))
    refused(read_decode_trace, path, where=path, needle="expected at least one iteration")
    plain = tmp_path / "p.jsonl.gz"  # plain text named .gz: no BadGzipFile echoing its first bytes
    plain.write_text(json.dumps(HEADER) + "\n")
    refused(read_decode_trace, plain, where=plain, needle="expected at least one iteration")


def test_decode_trace_binary_and_endless_lines(tmp_path):
    binary = tmp_path / "b.jsonl"
    binary.write_bytes((json.dumps(HEADER) + "\n").encode() + b"\xff\xfe" + MARK.encode() + b"\n")
    refused(read_decode_trace, binary, where=f"{binary}: line 2", needle="not UTF-8")
    endless = tmp_path / "e.jsonl"
    endless.write_bytes((json.dumps(HEADER) + "\n").encode() + MARK.encode() * (MAX_LINE_BYTES // 4))
    refused(read_decode_trace, endless, where=f"{endless}: line 2", needle="(MAX_LINE_BYTES)")
    xz = tmp_path / "x.jsonl"
    xz.write_bytes(lzma.compress(json.dumps(HEADER).encode()))
    refused(read_decode_trace, xz, where=xz, needle="found xz-compressed data")


def test_is_decode_trace_is_safe(tmp_path):
    assert not is_decode_trace(tmp_path)  # a directory
    fifo = tmp_path / "p.jsonl"
    os.mkfifo(fifo)
    assert not is_decode_trace(fifo)  # would block on open
    endless = tmp_path / "e.jsonl"
    endless.write_bytes(b"x" * (MAX_LINE_BYTES + 10))
    assert not is_decode_trace(endless)
    good = _trace(tmp_path, [HEADER, REQ, IT])
    assert is_decode_trace(good)


def test_cli_decode_trace_duplicate_request(tmp_path, capsys):
    path = _trace(tmp_path, [HEADER, REQ, REQ, IT])
    cli_refuses(capsys, ["run", "default", str(path), "--quiet"], f"{path}: line 3: id")


def test_cli_header_only_decode_trace(tmp_path, capsys):
    path = _trace(tmp_path, [HEADER])
    cli_refuses(capsys, ["run", "default", str(path), "--quiet"], "expected at least one iteration")


# -- request traces --------------------------------------------------------------------------------

AZ = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
SW = "arrived_at,num_prefill_tokens,num_decode_tokens\n"
LEN = "num_prefill_tokens,num_decode_tokens\n"
MC = '{"timestamp": 0, "input_length": 10, "output_length": 2}\n'


def _file(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


@pytest.mark.parametrize(
    ("name", "text", "fmt", "where", "needle"),
    [
        ("s.csv", SW + "0.0,5,3\n1e30,5,3\n", None, "line 3: arrived_at", "(MAX_SIM_PS"),
        ("s.csv", SW + "1e999999999,5,3\n", None, "line 2: arrived_at", "(MAX_SIM_PS"),
        ("s.csv", SW + "0.0,5,3\n5000000,5,3\n", None, "line 3: arrived_at", "(MAX_SIM_PS"),
        (
            "a.csv",
            AZ + "2023-11-16 18:15:46.1,5,3\n9999-11-16 18:15:46.1,5,3\n",
            None,
            "line 3: TIMESTAMP",
            "after the first request",
        ),
        (
            "m.jsonl",
            MC + '{"timestamp": 1e400, "input_length": 1, "output_length": 1}\n',
            None,
            "line 2: timestamp",
            "(MAX_SIM_PS",
        ),
        (
            "a.csv",
            AZ + f"2023-11-16 18:15:46.1,{MAX_TOKENS + 1},3\n",
            None,
            "line 2: ContextTokens",
            "(MAX_TOKENS)",
        ),
        (
            "a.csv",
            AZ + "2023-11-16 18:15:46.1," + "9" * 5000 + ",3\n",
            None,
            "line 2: ContextTokens",
            "(MAX_TOKENS)",
        ),
        ("s.csv", SW + f"0.0,5,{10**9}\n", None, "line 2: num_decode_tokens", "(MAX_TOKENS)"),
        (
            "m.jsonl",
            '{"timestamp": 0, "input_length": 1000000000, "output_length": 2}\n',
            None,
            "line 1: input_length",
            "(MAX_TOKENS)",
        ),
        ("m.jsonl", MC + "[" * 100_000 + "]" * 100_000 + "\n", None, "line 2", "nested too deeply"),
        ("a.csv", AZ, None, "", "expected at least one request, found none"),
        ("a.csv", AZ + "\n\n", "azure", "", "expected at least one request, found none"),
        ("s.csv", SW, None, "", "expected at least one request, found none"),
        ("m.jsonl", "\n\n", "mooncake", "", "expected at least one request, found none"),
        ("e.csv", "", "splitwise", "line 1", "found an empty file"),
        ("x.csv", f"{MARK},ContextTokens\n", "azure", "line 1", "missing TIMESTAMP, GeneratedTokens"),
    ],
)
def test_request_trace_bad_input(tmp_path, name, text, fmt, where, needle):
    path = _file(tmp_path, name, text)
    at = f"{path}: {where}" if where else str(path)
    refused(read_trace, path, fmt, where=at, needle=needle)


def test_lengths_header_only_and_absurd_rate(tmp_path):
    path = _file(tmp_path, "l.csv", LEN)
    refused(read_trace, path, rate=2.0, where=path, needle="found none")
    rows = _file(tmp_path, "r.csv", LEN + "5,3\n" * 10)
    refused(read_trace, rows, rate=1e-30, where=f"{rows}: rate", needle="expected a finite rate")
    refused(read_trace, rows, rate=float("nan"), where=f"{rows}: rate", needle="found nan")


@pytest.mark.parametrize(
    ("data", "fmt", "line", "needle"),
    [
        (
            (SW + "0,5,3\n").encode() + b"\xff\xfe" + MARK.encode() + b"\n",
            "splitwise",
            3,
            "expected UTF-8 text",
        ),
        ((SW + "0,5,3\n").encode() + MARK.encode() + b"\x00\n", "splitwise", 3, "found binary data"),
        (
            (SW + "0,5,3\n").encode() + MARK.encode() * (MAX_LINE_BYTES // 4),
            "splitwise",
            3,
            "(MAX_LINE_BYTES)",
        ),
        (MC.encode() + MARK.encode() * (MAX_LINE_BYTES // 4) + b"\n", "mooncake", 2, "(MAX_LINE_BYTES)"),
    ],
)
def test_request_trace_bytes(tmp_path, data, fmt, line, needle):
    path = _file(tmp_path, "t.csv", data)
    refused(read_trace, path, fmt, where=f"{path}: line {line}", needle=needle)


def test_request_trace_compressed(tmp_path):
    xz = _file(tmp_path, "t.csv.xz", lzma.compress((SW + "0,5,3\n").encode()))
    refused(read_trace, xz, "splitwise", where=xz, needle="found xz-compressed data")
    refused(guess_format, xz, where=xz, needle="found xz-compressed data")
    body = SW + "".join(f"{i}.0,{i % 100 + 1},3\n" for i in range(5000))
    packed = gzip.compress(body.encode())
    cut = _file(tmp_path, "cut.csv.gz", packed[: len(packed) // 2])
    refused(read_trace, cut, "splitwise", where=f"{cut}: line", needle="truncated or corrupt gzip")
    good = _file(tmp_path, "ok.csv.gz", gzip.compress((SW + "0,5,3\n").encode()))
    assert len(read_trace(good)) == 1  # gzip is supported where a reader says so


def test_request_trace_directory_and_pipe(tmp_path):
    refused(read_trace, tmp_path, where=tmp_path, needle="expected a file, found a directory")
    fifo = tmp_path / "p.csv"
    os.mkfifo(fifo)
    refused(read_trace, fifo, where=fifo, needle="found a pipe")


def test_request_trace_more_than_max_requests(tmp_path, monkeypatch):
    import sim.requests.readers as readers

    monkeypatch.setattr(readers, "MAX_REQUESTS", 3)
    path = _file(tmp_path, "s.csv", SW + "0,5,3\n" * 5)
    refused(read_trace, path, where=f"{path}: line 5", needle="(MAX_REQUESTS)")
    assert len(read_trace(path, limit=3)) == 3  # a limit stops before the cap
    mc = _file(tmp_path, "m.jsonl", MC * 5)
    refused(read_trace, mc, where=f"{mc}: line 4", needle="(MAX_REQUESTS)")


def test_unknown_header_is_not_echoed(tmp_path):
    path = _file(tmp_path, "odd.csv", f"{MARK}_when,{MARK}_what\n1,2\n")
    msg = refused(guess_format, path, where=f"{path}: line 1", needle="cannot tell the trace format")
    assert "TIMESTAMP" in msg and "arrived_at" in msg  # says what header was expected


def test_cli_splitwise_time_overflow(tmp_path, capsys):
    path = _file(tmp_path, "s.csv", SW + "0.0,5,3\n1e30,5,3\n")
    cli_refuses(capsys, ["run", "default", str(path), "--quiet"], f"{path}: line 3: arrived_at")


def test_cli_header_only_csv(tmp_path, capsys):
    path = _file(tmp_path, "a.csv", AZ)
    cli_refuses(capsys, ["run", "default", str(path), "--quiet"], "expected at least one request, found none")


# -- synthetic requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "needle"),
    [
        ({"rate": float("nan")}, "rate", "expected a finite"),
        ({"rate": float("inf")}, "rate", "expected a finite"),
        ({"rate": 1e30}, "rate", "expected a finite rate"),
        ({"rate": 1e-30}, "rate", "expected a finite rate"),
        ({"cv": 1e-200, "arrival": "gamma"}, "cv", "coefficient of variation"),
        ({"prompt_cv": 1e200}, "prompt_cv", "coefficient of variation"),
        ({"count": 10**9}, "count", "(MAX_REQUESTS)"),
        ({"prompt_tokens": 10**9}, "prompt_tokens", "(MAX_TOKENS)"),
        ({"output_max": MAX_TOKENS + 1}, "output_max", "(MAX_TOKENS)"),
    ],
)
def test_synthetic_params_refuse_absurd_values(data, key, needle):
    def build():
        return SyntheticParams.from_mapping(data, where="synthetic")

    refused(build, where=f"synthetic.{key}", needle=needle)


def test_arrival_params_and_seed():
    def build():
        return ArrivalParams.from_mapping({"rate": float("nan")}, where="x.csv")

    refused(build, where="x.csv: rate", needle="finite")
    refused(as_generator, -1, where="rng", needle="seed >= 0")


def test_synthetic_arrivals_never_pass_max_sim_ps():
    params = {"rate": MIN_RATE, "count": 1000, "arrival": "gamma", "cv": 10.0}
    refused(lambda: list(synthetic_requests(params, 0)), where="synthetic.rate", needle="(MAX_SIM_PS")


def test_cli_synthetic_toml_with_nan_rate(tmp_path, capsys):
    path = _file(tmp_path, "syn.toml", f"# {MARK}\n[synthetic]\ncount = 4\nrate = nan\n")
    out = tmp_path / "out.jsonl"
    argv = ["trace", "gen", "--model", "llama-3.1-8b", "--requests", str(path), "--out", str(out)]
    cli_refuses(capsys, argv, f"{path}: synthetic.rate: expected a finite number")
    assert not out.exists()


def test_shipped_inputs_still_load():
    root = Path(__file__).resolve().parents[2]
    for name in ("azure_conv_200.csv", "splitwise_conv_200.csv", "mooncake_conv_200.jsonl"):
        assert len(read_trace(root / "traces" / name)) == 200
    assert len(read_trace(root / "traces" / "arxiv_lengths_200.csv", rate=2.0)) == 200
    for name in ("llama-3.1-8b_azure_conv_24.jsonl.gz", "llama-3.1-8b_synthetic_poisson_16.jsonl.gz"):
        assert read_decode_trace(root / "traces" / name).batches
    for path in sorted((root / "sim" / "data" / "models").glob("*.json")):
        assert load_model_config(path).layers >= 1
    assert read_toml(root / "traces" / "synthetic_poisson.toml")["synthetic"]["count"] == 16
