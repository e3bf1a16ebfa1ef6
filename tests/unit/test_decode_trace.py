"""The decode-trace format: writer/reader round trip, reader errors, and replay ordering."""

import csv
import gzip
import json

import pytest

from sim.cli import main
from sim.core.errors import ConfigError
from sim.requests.record import Request
from sim.serving.decode_trace import (
    FORMAT,
    VERSION,
    DecodeTraceWriter,
    ReplayScheduler,
    read_decode_trace,
    requests_in_order,
)
from sim.serving.scheduler import Batch, BatchEntry

WORK = {"tokens": 1.0, "weight_bytes": 1.0, "kv_read_bytes": 0.0, "kv_write_bytes": 0.0, "flops": 1.0}
R0 = Request(0, 0, 4, 2)
R1 = Request(1, 1_000_000, 3, 1)


def _batches() -> list[Batch]:
    return [
        Batch(0, 0, (BatchEntry(R0, "prefill", 4, 4, True),)),
        Batch(1, 500_000, (BatchEntry(R0, "decode", 1, 5, True),)),
        Batch(
            2,
            1_000_000,
            (BatchEntry(R0, "decode", 1, 6, False), BatchEntry(R1, "prefill", 3, 3, True)),
        ),
    ]


def _key(b: Batch) -> tuple:
    return (
        b.index,
        b.start_ps,
        tuple((e.request, e.phase, e.tokens, e.context_tokens, e.emits_token) for e in b.entries),
    )


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz"])
def test_round_trip(tmp_path, name):
    path = tmp_path / name
    w = DecodeTraceWriter(path, {"model": "m", "mapping": {"tp": 1}})
    for b in _batches():
        w.iteration(b, WORK)
    w.close()
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    trace = read_decode_trace(path)
    assert trace.header["format"] == FORMAT and trace.header["version"] == VERSION
    assert trace.header["model"] == "m"
    assert trace.requests == {0: R0, 1: R1}
    assert [_key(b) for b in trace.batches] == [_key(b) for b in _batches()]
    assert list(requests_in_order(trace)) == [R0, R1]


def test_gzip_is_reproducible(tmp_path):
    out = []
    for i in range(2):
        path = tmp_path / f"{i}" / "t.jsonl.gz"
        w = DecodeTraceWriter(path, {"model": "m"})
        for b in _batches():
            w.iteration(b, WORK)
        w.close()
        out.append(path.read_bytes())
    assert out[0] == out[1]


HEADER = {"record": "header", "format": FORMAT, "version": VERSION, "model": "m"}
REQ = {"record": "request", "id": 0, "arrival_ps": 0, "prompt_tokens": 4, "output_tokens": 2}


def _it(entries, **kw):
    return {"record": "iteration", "index": 0, "not_before_ps": 0, "entries": entries, "work": WORK, **kw}


def _write(tmp_path, lines, name="bad.jsonl"):
    path = tmp_path / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.mark.parametrize(
    ("lines", "line", "needle"),
    [
        ([HEADER, REQ, "{not json"], 3, "malformed JSON"),
        ([REQ, _it([[0, "p", 4, 4, 1]])], 1, "header first"),
        ([{**HEADER, "version": 2}, REQ], 1, "expected version 1, found 2"),
        ([HEADER, REQ, _it([[7, "p", 4, 4, 1]])], 3, "request 7 has no request record"),
        ([HEADER, REQ, _it([[0, "x", 4, 4, 1]])], 3, "phase p/d"),
        ([HEADER, REQ, _it([[0, "p", 5, 4, 1]])], 3, "tokens <= context"),
        ([HEADER, REQ, _it([[0, "p", 4, 4]])], 3, "entries[0]"),
        ([HEADER, REQ, _it([])], 3, "non-empty entries"),
        ([HEADER, {"record": "request", "id": 0}], 2, "misses key"),
        ([HEADER, {"record": "bogus"}], 2, "expected record = request or iteration"),
        ([HEADER, REQ, "[1, 2]"], 3, "expected a JSON object"),
    ],
)
def test_reader_errors(tmp_path, lines, line, needle):
    path = _write(tmp_path, lines)
    with pytest.raises(ConfigError) as exc:
        read_decode_trace(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: line {line}: "), msg
    assert needle in msg, msg


def test_reader_missing_file_and_empty(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        read_decode_trace(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="no header"):
        read_decode_trace(_write(tmp_path, [], name="empty.jsonl"))


def test_truncated_gzip(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    w = DecodeTraceWriter(path, {"model": "m"})
    for i in range(200):
        w.request(Request(i, i, 100 + i, 10))
    w.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError) as exc:
        read_decode_trace(path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{path}: line "), msg
    assert "truncated" in msg or "malformed JSON" in msg, msg


def test_replay_scheduler_waits_for_time_and_arrivals(tmp_path):
    path = tmp_path / "t.jsonl"
    w = DecodeTraceWriter(path, {"model": "m"})
    for b in _batches():
        w.iteration(b, WORK)
    w.close()
    sched = ReplayScheduler(read_decode_trace(path))
    assert sched.num_waiting == 3 and not sched.idle
    assert sched.next_batch(0) is None  # R0 not added yet
    sched.add(R0, 0)
    assert sched.next_batch(0).index == 0
    assert sched.next_batch(100) is None  # batch 1 not before 500_000
    assert sched.wake_time(100) == 500_000
    assert sched.next_batch(500_000).index == 1
    # batch 2 is due at 1_000_000 but R1 has not arrived: it must wait for the arrival
    assert sched.next_batch(2_000_000) is None
    sched.add(R1, 2_000_000)
    assert sched.next_batch(2_000_000).index == 2
    assert sched.idle and sched.next_batch(3_000_000) is None and sched.wake_time(3_000_000) is None


def test_full_replay_respects_not_before_and_arrivals(tmp_path):
    """In the full simulation no iteration starts before its not_before_ps or its requests' arrival."""
    late = Request(1, 3_000_000_000, 8, 2)  # arrives at 3 ms
    a = Request(0, 0, 16, 3)
    batches = [
        Batch(0, 0, (BatchEntry(a, "prefill", 16, 16, True),)),
        Batch(1, 2_000_000_000, (BatchEntry(a, "decode", 1, 17, True),)),  # not before 2 ms
        # formed at 0 in the writer's clock, but its new request only arrives at 3 ms
        Batch(2, 0, (BatchEntry(a, "decode", 1, 18, True), BatchEntry(late, "prefill", 8, 8, True))),
        Batch(3, 0, (BatchEntry(late, "decode", 1, 9, True),)),
    ]
    path = tmp_path / "t.jsonl"
    w = DecodeTraceWriter(path, {"model": "llama-3.1-8b", "mapping": {"tp": 1, "pp": 1, "ep": 1, "dp": 1}})
    for b in batches:
        w.iteration(b, WORK)
    w.close()
    out = tmp_path / "run"
    assert main(["run", "default", str(path), "--out", str(out), "--json"]) == 0
    with (out / "iterations.csv").open() as fh:
        rows = {int(r["index"]): float(r["start_ms"]) for r in csv.DictReader(fh)}
    assert sorted(rows) == [0, 1, 2, 3]
    assert rows[1] >= 2.0
    assert rows[2] >= 3.0 and rows[3] >= rows[2]
    assert rows[0] < rows[1] < rows[2]


def test_committed_samples_read(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "traces"
    for name in ("llama-3.1-8b_azure_conv_24.jsonl.gz", "llama-3.1-8b_synthetic_poisson_16.jsonl.gz"):
        trace = read_decode_trace(root / name)
        assert trace.header["model"] == "llama-3.1-8b"
        assert trace.batches and len(trace.requests) in (24, 16)
        assert (root / name).stat().st_size < 200_000
    with gzip.open(root / "llama-3.1-8b_azure_conv_24.jsonl.gz", "rt") as fh:
        assert json.loads(fh.readline())["source"]["limit"] == 24
