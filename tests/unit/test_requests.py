"""Trace readers: counts, first/last values, normalised arrivals, format guessing, gzip, bad input."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest

from sim.core.errors import ConfigError, RegistryError
from sim.core.units import PS_PER_S
from sim.requests.readers import MOONCAKE_BLOCK_TOKENS, guess_format, open_trace, read_trace
from sim.requests.record import Request

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "traces"
AZURE = TRACES / "azure_conv_200.csv"
SPLITWISE = TRACES / "splitwise_conv_200.csv"
MOONCAKE = TRACES / "mooncake_conv_200.jsonl"
LENGTHS = TRACES / "arxiv_lengths_200.csv"
SHARED = ROOT.parent / "shared" / "data" / "traces"


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def json_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def assert_arrivals_normalised(reqs: list[Request]) -> None:
    assert reqs[0].arrival_ps == 0
    assert all(a.arrival_ps <= b.arrival_ps for a, b in itertools.pairwise(reqs))
    assert [r.id for r in reqs] == list(range(len(reqs)))


# -- the committed samples -------------------------------------------------------------------------


def test_azure_sample_count_first_last_and_exact_arrivals():
    rows = csv_rows(AZURE)
    reqs = read_trace(AZURE, "azure")
    assert len(reqs) == len(rows) == 200
    for req, row in ((reqs[0], rows[0]), (reqs[-1], rows[-1])):
        assert req.prompt_tokens == int(row["ContextTokens"])
        assert req.output_tokens == int(row["GeneratedTokens"])
    assert_arrivals_normalised(reqs)
    # 2023-11-16 18:15:46.6805900 -> 18:16:47.9441270 (last row of the slice): exact to 100 ns.
    assert rows[0]["TIMESTAMP"] == "2023-11-16 18:15:46.6805900"
    assert rows[-1]["TIMESTAMP"] == "2023-11-16 18:16:47.9441270"
    assert reqs[-1].arrival_ps == 61_263_537_000_000
    assert reqs[1].arrival_ps == 4_314_579_000_000  # 18:15:50.9951690 - 18:15:46.6805900


def test_splitwise_sample_count_first_last():
    rows = csv_rows(SPLITWISE)
    reqs = read_trace(SPLITWISE, "splitwise")
    assert len(reqs) == len(rows) == 200
    for req, row in ((reqs[0], rows[0]), (reqs[-1], rows[-1])):
        assert req.prompt_tokens == int(row["num_prefill_tokens"])
        assert req.output_tokens == int(row["num_decode_tokens"])
        assert req.arrival_ps == round(Decimal(row["arrived_at"]) * PS_PER_S)
    assert_arrivals_normalised(reqs)


def test_splitwise_is_the_azure_trace_re_expressed():
    """SOURCES.md: Vidur's splitwise_conv is the Azure conv trace row for row (times to ~1 us)."""
    azure, split = read_trace(AZURE), read_trace(SPLITWISE)
    assert [(r.prompt_tokens, r.output_tokens) for r in azure] == [
        (r.prompt_tokens, r.output_tokens) for r in split
    ]
    assert max(abs(a.arrival_ps - b.arrival_ps) for a, b in zip(azure, split, strict=True)) <= 1_000_000


def test_mooncake_sample_ms_to_ps_and_hash_ids():
    rows = json_rows(MOONCAKE)
    reqs = read_trace(MOONCAKE, "mooncake")
    assert len(reqs) == len(rows) == 200
    t0 = rows[0]["timestamp"]
    for req, row in zip(reqs, rows, strict=True):
        assert req.arrival_ps == (row["timestamp"] - t0) * 10**9  # 1 ms = 1e9 ps
        assert req.prompt_tokens == row["input_length"]
        assert req.output_tokens == row["output_length"]
        assert req.prefix_hash_ids == tuple(row["hash_ids"])
        assert req.prefix_block_tokens == MOONCAKE_BLOCK_TOKENS
        # one hash per started 512-token block of the prompt
        assert len(req.prefix_hash_ids) == -(-req.prompt_tokens // MOONCAKE_BLOCK_TOKENS)
    assert reqs[-1].arrival_ps == rows[-1]["timestamp"] * 10**9 > 0
    assert_arrivals_normalised(reqs)


def test_lengths_file_needs_an_arrival_rate_and_then_synthesises_arrivals():
    with pytest.raises(ConfigError, match=r"arxiv_lengths_200\.csv: .*no arrival times.*rate="):
        read_trace(LENGTHS)
    rows = csv_rows(LENGTHS)
    reqs = read_trace(LENGTHS, rate=4.0, rng=7)
    assert len(reqs) == 200
    assert (reqs[0].prompt_tokens, reqs[0].output_tokens) == (
        int(rows[0]["num_prefill_tokens"]),
        int(rows[0]["num_decode_tokens"]),
    )
    assert reqs[-1].prompt_tokens == int(rows[-1]["num_prefill_tokens"])
    assert_arrivals_normalised(reqs)
    assert read_trace(LENGTHS, rate=4.0, rng=7) == reqs
    assert read_trace(LENGTHS, rate=4.0, rng=8) != reqs
    gamma = read_trace(LENGTHS, rate="4Hz", arrival="gamma", cv=3, rng=7)
    assert_arrivals_normalised(gamma)


@pytest.mark.parametrize(
    ("path", "fmt"),
    [(AZURE, "azure"), (SPLITWISE, "splitwise"), (MOONCAKE, "mooncake"), (LENGTHS, "lengths")],
)
def test_format_is_guessed_from_the_first_line(path, fmt, tmp_path):
    assert guess_format(path) == fmt
    renamed = tmp_path / "trace.data"  # no helpful extension
    renamed.write_bytes(path.read_bytes())
    assert guess_format(renamed) == fmt


@pytest.mark.parametrize("path", [AZURE, SPLITWISE, MOONCAKE])
def test_gzip_reads_the_same(path, tmp_path):
    gz = tmp_path / (path.name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_trace(gz) == read_trace(path)


def test_limit_stops_early_and_zero_gives_nothing():
    assert read_trace(AZURE, limit=7) == read_trace(AZURE)[:7]
    assert read_trace(MOONCAKE, limit=0) == []
    assert len(read_trace(MOONCAKE, limit=10_000)) == 200
    with pytest.raises(ConfigError, match="limit"):
        read_trace(AZURE, limit=-1)


def test_readers_stream_line_by_line(tmp_path):
    """Requests before a bad line come out before the error; a limit never reaches the bad line."""
    lines = AZURE.read_bytes().decode().splitlines(keepends=True)
    lines[150] = "2023-11-16 18:16:40.0000000,12,oops\r\n"
    bad = tmp_path / "azure.csv"
    bad.write_bytes("".join(lines).encode())
    it = open_trace(bad)
    got = [next(it) for _ in range(149)]
    assert got == read_trace(AZURE, limit=149)
    with pytest.raises(ConfigError, match=r"azure\.csv: line 151: GeneratedTokens"):
        list(it)
    assert len(read_trace(bad, limit=100)) == 100


def test_unknown_format_and_missing_file():
    with pytest.raises(RegistryError, match="azure"):
        read_trace(AZURE, "burstgpt")
    with pytest.raises(ConfigError, match="no such file"):
        read_trace(TRACES / "nope.csv")


# -- bad input: one line naming file, line and column ----------------------------------------------

AZ_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
SW_HEAD = "arrived_at,num_prefill_tokens,num_decode_tokens\n"
MC_OK = '{"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [0]}\n'


@pytest.mark.parametrize(
    ("name", "text", "where", "expected"),
    [
        (
            "a.csv",
            "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.1,5\n",
            "a.csv: line 1",
            "missing GeneratedTokens",
        ),
        (
            "a.csv",
            AZ_HEAD + "2023-11-16 18:15:46.1,5,3\n2023-11-16 18:15:47,x,3\n",
            "a.csv: line 3: ContextTokens",
            "found 'x'",
        ),
        ("a.csv", AZ_HEAD + "2023-11-16 18:15:46.1,-5,3\n", "a.csv: line 2: ContextTokens", "found '-5'"),
        (
            "a.csv",
            AZ_HEAD + "2023-11-16 18:15:46.1,5,0\n",
            "a.csv: line 2: GeneratedTokens",
            ">= 1, found '0'",
        ),
        ("a.csv", AZ_HEAD + "2023-11-16 18:15:46.1,5,2.5\n", "a.csv: line 2: GeneratedTokens", "found '2.5'"),
        ("a.csv", AZ_HEAD + "2023-13-16 18:15:46.1,5,3\n", "a.csv: line 2: TIMESTAMP", "date-time"),
        ("a.csv", AZ_HEAD + "yesterday,5,3\n", "a.csv: line 2: TIMESTAMP", "found 'yesterday'"),
        (
            "a.csv",
            AZ_HEAD + "2023-11-16 18:15:46.1,5\n",
            "a.csv: line 2",
            "3 comma-separated fields, found 2",
        ),
        (
            "a.csv",
            AZ_HEAD + "2023-11-16 18:15:46,5,3\n2023-11-16 18:15:45,5,3\n",
            "a.csv: line 3: TIMESTAMP",
            "non-decreasing",
        ),
        ("s.csv", SW_HEAD + "0.0,5,3\nnan,5,3\n", "s.csv: line 3: arrived_at", "found 'nan'"),
        ("s.csv", SW_HEAD + "-1.5,5,3\n", "s.csv: line 2: arrived_at", ">= 0, found '-1.5'"),
        ("s.csv", SW_HEAD + "0.0,5,3\n\n2.0,,3\n", "s.csv: line 4: num_prefill_tokens", "found ''"),
        ("m.jsonl", MC_OK + '{"timestamp": 5, "input_length": 10,\n', "m.jsonl: line 2", "malformed JSON"),
        ("m.jsonl", MC_OK + "[1, 2, 3]\n", "m.jsonl: line 2", "expected a JSON object, found list"),
        (
            "m.jsonl",
            MC_OK + '{"timestamp": 5, "input_length": 10}\n',
            "m.jsonl: line 2",
            "missing output_length",
        ),
        (
            "m.jsonl",
            MC_OK + '{"timestamp": 5, "input_length": -4, "output_length": 1}\n',
            "m.jsonl: line 2: input_length",
            "found -4",
        ),
        (
            "m.jsonl",
            MC_OK + '{"timestamp": 5, "input_length": "10", "output_length": 1}\n',
            "m.jsonl: line 2: input_length",
            "found '10'",
        ),
        (
            "m.jsonl",
            MC_OK + '{"timestamp": 5, "input_length": 10, "output_length": true}\n',
            "m.jsonl: line 2: output_length",
            "found True",
        ),
        (
            "m.jsonl",
            MC_OK + '{"timestamp": NaN, "input_length": 10, "output_length": 1}\n',
            "m.jsonl: line 2",
            "NaN",
        ),
        (
            "m.jsonl",
            MC_OK + '{"timestamp": "soon", "input_length": 10, "output_length": 1}\n',
            "m.jsonl: line 2: timestamp",
            "found 'soon'",
        ),
        (
            "m.jsonl",
            MC_OK + '{"timestamp": 5, "input_length": 10, "output_length": 1, "hash_ids": [1, -2]}\n',
            "m.jsonl: line 2: hash_ids",
            "found -2",
        ),
        (
            "m.jsonl",
            '{"timestamp": 9, "input_length": 10, "output_length": 1}\n' + MC_OK,
            "m.jsonl: line 2: timestamp",
            "non-decreasing",
        ),
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path, name, text, where, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_trace(path)
    msg = str(info.value)
    assert msg.startswith(str(tmp_path / where) + ":"), msg
    assert expected in msg, msg
    assert "\n" not in msg


def test_unrecognised_empty_and_binary_files(tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text("when,what\n1,2\n")
    with pytest.raises(ConfigError, match=r"odd\.csv: line 1: cannot tell the trace format.*pass format="):
        read_trace(odd)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ConfigError, match=r"empty\.jsonl: expected a trace, found an empty file"):
        read_trace(empty)
    with pytest.raises(ConfigError, match=r"empty\.jsonl: line 1: .*empty file"):
        read_trace(empty, "azure")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(SW_HEAD.encode() + b"0.0,5,3\n\xff\xfe\x00garbage\n")
    with pytest.raises(ConfigError, match=r"bin\.csv: line \d+: expected UTF-8"):
        read_trace(binary, "splitwise")
    broken = tmp_path / "broken.csv.gz"
    body = SW_HEAD + "".join(f"{i}.0,{i * 7919 % 1000 + 1},3\n" for i in range(5000))
    packed = gzip.compress(body.encode())
    assert len(packed) > 2000
    broken.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ConfigError, match=r"broken\.csv\.gz: line \d+: .*read error"):
        read_trace(broken, "splitwise")


def test_reader_options_are_checked():
    with pytest.raises(ConfigError, match="unknown reader option"):
        read_trace(AZURE, block_tokens=16)
    assert read_trace(MOONCAKE, block_tokens=16, limit=1)[0].prefix_block_tokens == 16
    with pytest.raises(ConfigError, match="rate"):
        read_trace(LENGTHS, rate=-1)


def test_request_record_checks_its_fields():
    r = Request(3, 5, 10, 2)
    assert r.total_tokens == 12 and r.arrival_s == 5e-12
    with pytest.raises(AttributeError):
        r.prompt_tokens = 4  # type: ignore[misc]
    for bad in [dict(prompt_tokens=0), dict(output_tokens=-1), dict(arrival_ps=-1), dict(arrival_ps=1.5)]:
        with pytest.raises(ConfigError, match="request 3"):
            Request(**{**dict(id=3, arrival_ps=5, prompt_tokens=10, output_tokens=2), **bad})
    with pytest.raises(ConfigError, match="prefix_block_tokens"):
        Request(0, 0, 10, 2, prefix_hash_ids=(1,))


# -- the full traces, when the shared data directory is present -------------------------------------

FULL = [
    ("AzureLLMInferenceTrace_code.csv", "azure", 8819, 3435.948056),
    ("AzureLLMInferenceTrace_conv.csv", "azure", 19366, 3501.721937),
    ("splitwise_code.csv", "splitwise", 8819, 3435.948056),
    ("splitwise_conv.csv", "splitwise", 19366, 3501.721937),
    ("conversation_trace.jsonl", "mooncake", 12031, 3536.999),
    ("synthetic_trace.jsonl", "mooncake", 3993, 1022.025),
]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared trace data not present")
@pytest.mark.parametrize(("name", "fmt", "rows", "span_s"), FULL)
def test_full_traces_match_sources(name, fmt, rows, span_s):
    """Row counts from SOURCES.md; spans from the files' last timestamps."""
    count, last, monotone, prev = 0, None, True, 0
    for req in open_trace(SHARED / name):
        assert guess_format(SHARED / name) == fmt if count == 0 else True
        monotone &= req.arrival_ps >= prev
        prev, last, count = req.arrival_ps, req, count + 1
    assert count == rows
    assert monotone
    assert last.arrival_ps == pytest.approx(span_s * PS_PER_S, abs=1e6)
