"""memwall run --timeline: a Chrome/Perfetto trace-event JSON that follows the format's rules."""

import gzip
import itertools
import json
from collections import defaultdict

import pytest

from sim.cli import main
from sim.observe import timeline

NS = 1e-3  # 1 ns in microseconds
CRITICAL = "critical path"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def load_checked(path):
    """The trace, checked against the trace-event format's rules; (events, process names, thread names)."""
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    assert doc["displayTimeUnit"] == "ns"
    events = doc["traceEvents"]
    procs, threads, used = {}, {}, set()
    for e in events:
        assert {"ph", "pid", "tid"} <= e.keys(), e
        assert e["ph"] in ("X", "M"), e
        if e["ph"] == "M":
            if e["name"] == "process_name":
                procs[e["pid"]] = e["args"]["name"]
            elif e["name"] == "thread_name":
                threads[(e["pid"], e["tid"])] = e["args"]["name"]
            continue
        assert isinstance(e["name"], str) and e["name"]
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0, e
        assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0, e
        assert isinstance(e.get("args", {}), dict)
        used.add((e["pid"], e["tid"]))
    for pid, tid in used:  # metadata names every track used
        assert pid in procs, pid
        assert (pid, tid) in threads, (pid, tid)
    return events, procs, threads, doc


def tracks(events, procs, threads):
    """{(process name, thread name): [X events sorted by ts]}."""
    out = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            out[(procs[e["pid"]], threads[(e["pid"], e["tid"])])].append(e)
    for evs in out.values():
        evs.sort(key=lambda e: e["ts"])
    return out


def check_run(events, procs, threads, chips):
    t = tracks(events, procs, threads)
    iterations = t[("iterations", "iterations")]
    assert iterations
    run_end = max(e["ts"] + e["dur"] for e in iterations)
    crit = {name: evs for (proc, name), evs in t.items() if proc == CRITICAL}
    assert set(crit) >= {f"stage{i}" for i in range(chips)}
    # ops on one thread are sequential, and all critical-path ops form one chain
    chain = sorted((e for evs in crit.values() for e in evs), key=lambda e: e["ts"])
    for evs in [*crit.values(), chain]:
        for a, b in itertools.pairwise(evs):
            assert a["ts"] + a["dur"] <= b["ts"] + NS, (a, b)
    # each iteration is tiled by its ops: they lie within it and their durations sum to it
    per_iter = defaultdict(list)
    for evs in crit.values():
        for e in evs:
            per_iter[e["args"]["iteration"]].append(e)
    assert set(per_iter) == set(range(len(iterations)))
    for it in iterations:
        ops = per_iter[it["args"]["index"]]
        for e in ops:
            assert it["ts"] - NS <= e["ts"] and e["ts"] + e["dur"] <= it["ts"] + it["dur"] + NS
        assert sum(e["dur"] for e in ops) == pytest.approx(it["dur"], abs=NS)
        assert set(it["args"]) >= {"requests", "tokens", "prefill_tokens", "top_causes_us"}
    # every op carries its blame, and it adds up to the op's duration
    for evs in crit.values():
        for e in evs:
            assert sum(e["args"]["blame_us"].values()) == pytest.approx(e["dur"], abs=NS)
    # memory / compute sub-events start with their op and never outlast it
    units = {name: evs for (proc, name), evs in t.items() if proc.startswith("memories")}
    assert any(name.startswith("memory: ") for name in units)
    ops_at = {(e["args"]["iteration"], e["name"], e["ts"]): e for evs in crit.values() for e in evs}
    for evs in units.values():
        for e in evs:
            op = ops_at[(e["args"]["iteration"], e["name"], e["ts"])]
            assert e["dur"] <= op["dur"] + NS
    # requests lie within the run
    requests = {name: evs for (proc, name), evs in t.items() if proc == "requests"}
    assert requests
    for evs in requests.values():
        for e in evs:
            assert e["ts"] >= 0 and e["ts"] + e["dur"] <= run_end + NS
        assert evs[0]["name"] == "prefill/TTFT"
    return t


def test_fixed_batch_timeline(capsys, system_file, tmp_path):
    path = tmp_path / "run.json"
    code, out, err = run(
        capsys,
        "run",
        system_file,
        "--model",
        "llama-3.1-8b",
        "--batch",
        "2",
        "--context",
        "64",
        "--steps",
        "2",
        "--timeline",
        str(path),
        "--json",
    )
    assert code == 0, err
    json.loads(out)  # stdout stays one JSON object
    events, procs, threads, _ = load_checked(path)
    t = check_run(events, procs, threads, chips=1)
    assert len(t[("iterations", "iterations")]) == 2
    assert len(t[("requests", "request 0")]) == 2  # prefill/TTFT then decode
    assert any(e["name"] == "allreduce" for e in t[(CRITICAL, "fabric")])  # tp=2 collectives


def test_request_trace_pipeline_timeline(capsys, system_file, tmp_path):
    path = tmp_path / "trace.json"
    code, _, err = run(
        capsys,
        "run",
        system_file,
        "traces/azure_conv_200.csv",
        "--model",
        "llama-3.1-8b",
        "--limit",
        "3",
        "--set",
        "tp=1",
        "--set",
        "pp=2",
        "--timeline",
        str(path),
    )
    assert code == 0, err
    events, procs, threads, _ = load_checked(path)
    t = check_run(events, procs, threads, chips=2)
    assert len([k for k in t if k[0] == "requests"]) == 3
    assert any(e["name"] == "stage transfer" for e in t[(CRITICAL, "fabric")])
    assert any(e["args"]["prefill_tokens"] > 0 for e in t[("iterations", "iterations")])


CUT_ARGV = ["--model", "llama-3.1-8b", "--batch", "1", "--context", "16", "--steps", "9"]


def _ops_per_iteration(capsys, system_file, tmp_path) -> int:
    path = tmp_path / "whole.json"
    code, _, err = run(capsys, "run", system_file, *CUT_ARGV, "--timeline", str(path))
    assert code == 0, err
    _, _, _, doc = load_checked(path)
    assert "truncated" not in doc["otherData"] and doc["otherData"]["ops"] % 9 == 0
    return doc["otherData"]["ops"] // 9  # a fixed batch: every iteration runs the same ops


def test_large_runs_are_cut_at_whole_iterations_and_the_cut_names_them(capsys, system_file, tmp_path):
    per = _ops_per_iteration(capsys, system_file, tmp_path)
    path = tmp_path / "cut.json"
    budget = 3 * per + per // 2  # three whole iterations fit, a fourth does not
    code, _, err = run(
        capsys, "run", system_file, *CUT_ARGV, "--timeline", str(path), "--timeline-ops", str(budget)
    )
    assert code == 0, err
    assert "iterations 0..2 (3 of 9 iterations" in err  # said on stderr, not hidden in the file
    events, _, _, doc = load_checked(path)
    assert doc["otherData"]["iterations_with_ops"] == [0, 1, 2]
    assert "iterations 0..2" in doc["otherData"]["truncated"]
    assert any(e["name"] == "process_labels" and "iterations 0..2" in e["args"]["labels"] for e in events)
    iters = {e["args"]["iteration"] for e in events if e["ph"] == "X" and e.get("cat") == "op"}
    assert iters == {0, 1, 2}
    assert len([e for e in events if e.get("cat") == "iteration"]) == 9  # iterations stay complete


def test_spread_keeps_every_kth_iteration_with_the_smallest_k_that_fits(capsys, system_file, tmp_path):
    per = _ops_per_iteration(capsys, system_file, tmp_path)
    path = tmp_path / "spread.json.gz"
    budget = 3 * per  # 9 iterations: every 3rd (0, 3, 6) fits, every 2nd (5 of them) does not
    argv = ["--timeline", str(path), "--timeline-ops", str(budget), "--timeline-keep", "spread", "--quiet"]
    code, _, err = run(capsys, "run", system_file, *CUT_ARGV, *argv)
    assert code == 0 and err == "", err  # --quiet: the cut is in the file only
    doc = json.loads(gzip.decompress(path.read_bytes()))
    assert doc["otherData"]["iterations_with_ops"] == [0, 3, 6]
    assert "every 3rd iteration" in doc["otherData"]["truncated"]
    ops = {e["args"]["iteration"] for e in doc["traceEvents"] if e["ph"] == "X" and e.get("cat") == "op"}
    assert ops == {0, 3, 6}


def test_a_gz_name_writes_the_same_trace_gzipped_and_deterministically(capsys, system_file, tmp_path):
    plain, packed, again = tmp_path / "t.json", tmp_path / "t.json.gz", tmp_path / "u.json.gz"
    for path in (plain, packed, again):
        code, _, err = run(capsys, "run", system_file, *CUT_ARGV, "--timeline", str(path))
        assert code == 0, err
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    assert packed.read_bytes() == again.read_bytes()  # no time stamp in the gzip header
    assert packed.stat().st_size * 5 < plain.stat().st_size


def test_a_bad_keep_is_refused_by_name():
    from sim.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--timeline-keep"):
        timeline.select_iterations([], 0, 0, "last")


def test_bad_timeline_path_fails_with_one_line(capsys, system_file, tmp_path):
    code, out, err = run(
        capsys,
        "run",
        system_file,
        "--batch",
        "1",
        "--steps",
        "1",
        "--timeline",
        str(tmp_path / "no" / "t.json"),
    )
    assert code == 2
    assert "--timeline" in err and len(err.strip().splitlines()) == 1
    assert out == ""
