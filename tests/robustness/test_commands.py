"""Bad input and interruption for the commands other than ``run``: sweep, noc, collective, membench,
report and trace gen.

Each bad input is a one-line ``memwall: error:`` naming the place (file and key, or flag) with exit
code 2 (or a :class:`ConfigError` / :class:`SimulationError` from the function the CLI calls),
never a traceback, a hang or a nonsense result; an interrupted sweep keeps every finished cell and
lists them in ``results.csv``; a failed ``trace gen`` leaves no file. Every test is fast (< 2 s).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import pytest

from sim.cli import main
from sim.core.errors import ConfigError, SimulationError
from sim.core.limits import MAX_SWEEP_CELLS
from sim.experiments import noc, sweep
from sim.experiments.collective import run_collective
from sim.experiments.membench import MembenchParams, run_membench
from sim.fabric.collectives import CollectiveCase
from sim.fabric.network import NetworkParams
from sim.fabric.router import RouterParams
from sim.topology import mesh, torus

# A guard against hanging or building the huge input, not a speed test: refusing takes milliseconds,
# building would take hours, so any bound far above a loaded machine's noise separates them.
HANG_S = 10.0
REPO = Path(__file__).resolve().parents[2]
TINY = {"system": "default", "model": "llama-3.1-8b", "batch": 1, "context": 64, "steps": 2}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit 2, one line on stderr starting with 'memwall: error:', holding every needle."""
    assert code == 2, err
    assert err.startswith("memwall: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def no_partial_files(d: Path) -> None:
    leftovers = [p.name for p in d.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]
    assert not leftovers, leftovers


# -- sweep: the spec -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"base": {**TINY, "steps": 0}}, "base.steps"),
        ({"base": TINY, "grid": {"batch": [1, 0]}}, "grid.batch"),
        ({"base": TINY, "cells": [{"context": -5}]}, "cells[0].context"),
        ({"base": {**TINY, "limit": 0}}, "base.limit"),
        ({"base": {**TINY, "seed": -1}}, "base.seed"),
        ({"base": {**TINY, "batch": 10**12}}, "base.batch"),
        ({"base": {**TINY, "steps": 2.5}}, "base.steps"),
        ({"base": {**TINY, "steps": True}}, "base.steps"),
    ],
)
def test_sweep_refuses_non_positive_and_out_of_range_settings(data, where):
    with pytest.raises(ConfigError) as exc:
        sweep.parse_spec(data, where="s.toml")
    assert f"s.toml: {where}" in str(exc.value)
    assert "expected a whole number" in str(exc.value)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"sweep": 5}, "s.toml: sweep"),
        ({"grid": 5}, "s.toml: grid"),
        ({"base": [1, 2]}, "s.toml: base"),
        ({"cells": [5]}, "s.toml: cells[0]"),
        ({"cells": {"context": 1}}, "s.toml: cells"),
        ({"base": {"set": 3}}, "s.toml: base.set"),
        ({"grid": {"context": [[1, 2]]}}, "s.toml: grid.context"),
        ({"grid": {"context": []}}, "s.toml: grid.context"),
        ({"sweep": {"name": 5}}, "s.toml: sweep.name"),
        ({"sweep": {"name": "a/b"}}, "s.toml: sweep.name"),
        ({"sweep": {"name": "x\x00y"}}, "s.toml: sweep.name"),
        ({"sweep": {"nmae": "x"}}, "s.toml: sweep"),
        ({"base": {"chip.memory.hbm.tsv_rate": float("inf")}}, "s.toml: base.chip.memory.hbm.tsv_rate"),
    ],
)
def test_sweep_refuses_the_wrong_shape(data, where):
    with pytest.raises(ConfigError) as exc:
        sweep.parse_spec(data, where="s.toml")
    assert str(exc.value).startswith(where + ":"), str(exc.value)


def test_sweep_scalar_grid_value_is_one_value():
    spec = sweep.parse_spec({"base": TINY, "grid": {"context": 128, "mapping.tp": [1, 2]}})
    assert sorted((c["context"], c["set"]["mapping.tp"]) for c in spec.cells) == [(128, 1), (128, 2)]


def test_sweep_too_many_cells_refused_before_building():
    t0 = time.perf_counter()
    grid = {"context": list(range(1, 101)), "steps": list(range(1, 101)), "batch": list(range(1, 101))}
    with pytest.raises(ConfigError) as exc:
        sweep.parse_spec({"base": {"model": "llama-3.1-8b"}, "grid": grid}, where="s.toml")
    assert "MAX_SWEEP_CELLS" in str(exc.value) and "1,000,000" in str(exc.value)
    assert time.perf_counter() - t0 < HANG_S
    big = {"context": list(range(1, MAX_SWEEP_CELLS + 2))}
    with pytest.raises(ConfigError):
        sweep.parse_spec({"grid": big}, where="s.toml")


def test_sweep_cli_bad_spec_is_one_line(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text("sweep = 5\n")
    one_line_error(*cli(capsys, "sweep", str(spec), "--workers", "0")[::2], f"{spec}: sweep")
    spec.write_text('[base]\nmodel = "llama-3.1-8b"\nsteps = 0\n')
    one_line_error(*cli(capsys, "sweep", str(spec), "--workers", "0")[::2], f"{spec}: base.steps")


@pytest.mark.parametrize("flag", [["--workers", "-1"], ["--workers", "100000"], ["--retries", "10**9"]])
def test_sweep_cli_bounds_its_flags(tmp_path, capsys, flag):
    spec = tmp_path / "s.toml"
    spec.write_text('[base]\nmodel = "llama-3.1-8b"\n')
    one_line_error(*cli(capsys, "sweep", str(spec), *flag)[::2], flag[0])


# -- sweep: the scheduler --------------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["nonsense", "tcp://", "host:99999", "tcp://a b:8786", "http://x:1"])
def test_sweep_scheduler_address_is_checked(address):
    with pytest.raises(ConfigError) as exc:
        sweep.make_client(scheduler=address)
    assert exc.value.where == "--scheduler"


def test_sweep_cli_scheduler_nonsense_is_one_line(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('[base]\nmodel = "llama-3.1-8b"\n')
    one_line_error(*cli(capsys, "sweep", str(spec), "--scheduler", "nonsense")[::2], "--scheduler")
    both = cli(capsys, "sweep", str(spec), "--scheduler", "tcp://h:1", "--workers", "2")
    one_line_error(*both[::2], "--workers")


def test_sweep_unreachable_scheduler_times_out(monkeypatch):
    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(sweep, "SCHEDULER_TIMEOUT_S", 0.3)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as exc:
        sweep.make_client(scheduler="tcp://127.0.0.1:1")
    assert exc.value.where == "--scheduler" and "cannot reach" in str(exc.value)
    assert time.perf_counter() - t0 < HANG_S


# -- sweep: interruption and failed cells -------------------------------------------------------------
def fake_simulate(interrupt_at: int):
    def simulate(settings):
        if settings["context"] == interrupt_at:
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a cell's simulation
        return {"tpot_ms": {"mean": settings["context"] / 100}}, {"context": settings["context"]}

    return simulate


def test_sweep_interrupted_in_process_keeps_finished_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "simulate", fake_simulate(interrupt_at=66))
    spec = sweep.parse_spec({"base": TINY, "grid": {"context": [64, 65, 66, 67]}})
    finished = []
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(spec, tmp_path, None, on_cell=lambda cid, rec: finished.append(cid))
    assert len(finished) == 2
    for cid in finished:  # whole JSON records
        assert json.loads((tmp_path / "cells" / f"{cid}.json").read_text())["status"] == "ok"
    assert sorted(p.stem for p in (tmp_path / "cells").glob("*.json")) == sorted(finished)
    table = rows(tmp_path / "results.csv")
    assert sorted(r["cell"] for r in table) == sorted(finished)
    assert {r["context"]: r["tpot_ms.mean"] for r in table} == {"64": "0.64", "65": "0.65"}
    no_partial_files(tmp_path)
    # a re-run computes only the rest
    monkeypatch.setattr(sweep, "simulate", fake_simulate(interrupt_at=-1))
    report = sweep.run_sweep(spec, tmp_path, None)
    assert report.skipped == 2 and len(report.computed) == 2 and len(rows(tmp_path / "results.csv")) == 4


def test_sweep_cli_interrupted_exits_130_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "simulate", fake_simulate(interrupt_at=65))
    spec = tmp_path / "s.toml"
    spec.write_text('[base]\nmodel = "llama-3.1-8b"\nbatch = 1\nsteps = 2\n[grid]\ncontext = [64, 65]\n')
    code, out, err = cli(capsys, "sweep", str(spec), "--workers", "0", "--out", str(tmp_path / "o"))
    assert code == 130 and "Traceback" not in err
    assert "interrupted after 1 new cells" in out
    assert len(rows(tmp_path / "o" / "results.csv")) == 1


def test_sweep_interrupted_on_dask_keeps_finished_cells(tmp_path, monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    monkeypatch.setattr(sweep, "simulate", fake_simulate(interrupt_at=-1))
    spec = sweep.parse_spec({"base": TINY, "grid": {"context": [64, 65, 66, 67]}})
    seen: list[str] = []

    def ctrl_c(cid, record):  # Ctrl-C lands in the main thread, which waits for the next cell
        seen.append(cid)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0", silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as client,
        pytest.raises(KeyboardInterrupt),
    ):
        sweep.run_sweep(spec, tmp_path, client, on_cell=ctrl_c)
    assert sorted(r["cell"] for r in rows(tmp_path / "results.csv")) == sorted(seen)
    no_partial_files(tmp_path)


def test_sweep_failed_cell_records_no_file_content(tmp_path):
    secret = tmp_path / "trace.csv"
    secret.write_text("SECRET-LINE-ONE,hunter2\nfoo,bar\n")
    spec = sweep.parse_spec({"base": {"system": "default", "model": "llama-3.1-8b", "trace": str(secret)}})
    report = sweep.run_sweep(spec, tmp_path / "o", None, retries=0)
    (message,) = report.errors.values()
    assert "trace.csv" in message and "\n" not in message
    assert "SECRET" not in message and "hunter2" not in message
    assert "SECRET" not in (tmp_path / "o" / "results.csv").read_text()


def test_sweep_crash_message_is_one_short_line(tmp_path, monkeypatch):
    def crash(settings):
        raise RuntimeError("x" * 5000 + "\nsecond line")

    monkeypatch.setattr(sweep, "simulate", crash)
    report = sweep.run_sweep(sweep.parse_spec({"base": TINY}), tmp_path, None, retries=1)
    (message,) = report.errors.values()
    assert message.startswith("RuntimeError: xxx") and len(message) <= 300 and "second" not in message


# -- noc and the fabric's parameters -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "what"),
    [
        ({"kind": "mesh", "k": 1_000_000}, "routers"),
        ({"kind": "torus", "k": 2, "n": 10**9}, "routers"),
        ({"kind": "mesh", "k": [1000, 1000]}, "routers"),
        ({"kind": "ring", "k": 100, "p": 10**6}, "terminals"),
        ({"kind": "fully_connected", "k": 5000}, "links"),
        ({"kind": "tree", "radix": 2, "levels": 10**9}, "routers"),
        ({"kind": "fat_tree", "k": 1000, "levels": 3}, "routers"),
        ({"kind": "dragonfly", "p": 4, "a": 1000, "h": 1000}, "routers"),
    ],
)
def test_noc_network_size_refused_before_building(table, what):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as exc:
        noc.check_topology_size(table, where="--topology")
    assert exc.value.where == "--topology" and f" {what} (MAX_" in str(exc.value)
    assert time.perf_counter() - t0 < HANG_S


def test_noc_network_size_within_limits_passes():
    for table in (
        {"kind": "mesh", "k": 8},
        {"kind": "torus", "k": [4, 8]},
        {"kind": "dragonfly", "p": 2, "a": 4, "h": 2},
        {"kind": "mesh", "k": "x"},  # the generator reports the type
    ):
        noc.check_topology_size(table)


@pytest.mark.parametrize(
    "text", ["1e-9:1:1e-9", "0.1:0.5:0", "0.1:0.5:inf", "nan:1:0.1", "0.5:0.1:0.1", "0.1:1e300:1e-300", "a:b"]
)
def test_noc_sweep_range_is_bounded(text):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as exc:
        noc.sweep_rates(text)
    assert exc.value.where == "--sweep"
    assert time.perf_counter() - t0 < HANG_S


def test_noc_sweep_range_points():
    assert noc.sweep_rates("0.1:0.3:0.1") == [0.1, 0.2, 0.3]


@pytest.mark.parametrize(
    ("cls", "key", "value"),
    [
        (RouterParams, "t_sa", "1e23"),
        (RouterParams, "t_sa", 10**12),
        (RouterParams, "credit_delay", 10**10),
        (RouterParams, "vcs", 10**6),
        (RouterParams, "vc_buffer", 1 << 30),
        (NetworkParams, "link_latency", 10**12),
        (NetworkParams, "inject_latency", 10**10),
        (NetworkParams, "clock", "1e15Hz"),
        (NetworkParams, "deadlock_cycles", 10**12),
    ],
)
def test_fabric_parameters_are_bounded(cls, key, value):
    with pytest.raises(ConfigError) as exc:
        cls.from_mapping({key: value}, where="--set")
    assert exc.value.where == f"--set {key}" or exc.value.where == f"--set.{key}", exc.value.where


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--link-latency", "1000000000000"], "timing wheels"),
        (["--link-latency", "100000"], "fidelity message"),
        (["--set", "t_sa=1e23"], "t_sa"),
        (["--set", "t_sa=1e12"], "t_sa"),
        (["--seed", "-1"], "--seed"),
        (["--rate", "1e-9"], "no packet"),
    ],
)
def test_noc_cli_bad_values_are_one_line(capsys, argv, needle):
    t0 = time.perf_counter()
    code, _, err = cli(capsys, "noc", "--k", "4", "--warmup", "100", "--measure", "200", *argv)
    one_line_error(code, err, needle)
    assert time.perf_counter() - t0 < HANG_S


def test_noc_simulated_time_is_bounded():
    run = noc.NocRunParams(warmup=10**18, measure=10**18, drain=10**18)
    with pytest.raises(ConfigError) as exc:
        noc.run_noc(mesh(4), run)
    assert "MAX_SIM_PS" in str(exc.value)


DEADLOCK = [
    "noc", "--topology", "torus", "--k", "4", "--routing", "dor_unsafe", "--rate", "0.9", "--vcs", "1",
    "--vc-buffer", "2", "--packet-flits", "4", "--warmup", "200", "--measure", "2000", "--drain", "2000",
]  # fmt: skip


def test_noc_deadlock_is_a_non_zero_exit_with_its_wait_cycle(capsys):
    code, out, err = cli(capsys, *DEADLOCK, "--json")
    one_line_error(code, err, "deadlock: no flit moved", "wait cycle: r")
    assert out == ""


def test_noc_deadlock_can_be_recorded_instead():
    run = noc.NocRunParams(traffic="uniform", rate=0.9, packet_flits=4, warmup=200, measure=2000, drain=2000)
    args = (torus(4), run, NetworkParams(routing="dor_unsafe"), RouterParams(vcs=1, vc_buffer=2))
    with pytest.raises(SimulationError, match="wait cycle"):
        noc.run_noc(*args)
    res = noc.run_noc(*args, on_deadlock="report")
    assert res["saturated"] and "wait cycle" in res["deadlock"]


# -- collective ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--k", "4", "--seed", "-1"], "--seed"),
        (["--k", "4", "--bytes", "1TB", "--fidelity", "flit"], "--bytes: expected a flit-level collective"),
        (["--k", "4", "--bytes", "1EiB"], "--bytes"),
        (["--topology", "ring", "--k", "1500", "--op", "alltoall"], "--group"),
        (["--k", "4", "--set", "vcs=0"], "vcs"),
    ],
)
def test_collective_cli_bad_values_are_one_line(capsys, argv, needle):
    t0 = time.perf_counter()
    code, _, err = cli(capsys, "collective", *argv)
    one_line_error(code, err, needle)
    assert time.perf_counter() - t0 < HANG_S


def test_collective_refuses_repeated_ranks():
    case = CollectiveCase("allreduce", "ring", 4096, (0, 1, 1, 2))
    with pytest.raises(ConfigError, match="distinct"):
        run_collective(mesh(2), case)


# -- membench ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--seed", "-1"], "--seed"),
        (["--request-size", "1e400GB"], "--request-size"),
        (["--bytes", "1TiB", "--request-size", "64B", "--device", "hbm3"], "MAX_REQUESTS"),
        (
            ["--device", "hbf-gen1", "--set", "tR=200000s", "--concurrency", "1", "--request-size", "4KiB"],
            "simulated time",
        ),
    ],
)
def test_membench_cli_bad_values_are_one_line(capsys, argv, needle):
    t0 = time.perf_counter()
    code, _, err = cli(capsys, "membench", "--bytes", "1MiB", *argv)
    one_line_error(code, err, needle)
    assert time.perf_counter() - t0 < HANG_S


def test_membench_seed_checked_in_the_function():
    from sim.memory.factory import resolve_device

    with pytest.raises(ConfigError) as exc:
        run_membench(resolve_device("hbm3", {}, None), MembenchParams(total_bytes="1MiB"), seed=-1)
    assert exc.value.where == "--seed"


# -- report ------------------------------------------------------------------------------------------------
def report_dir(tmp_path: Path, **files: str | bytes) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    for name, content in files.items():
        path = d / name.replace("_json", ".json").replace("_csv", ".csv")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return d


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"summary_json": "[1, 2, 3]"}, "summary.json: expected a JSON object, found a list"),
        ({"summary_json": "{not json"}, "summary.json: expected JSON, found malformed JSON"),
        ({"summary_json": b'{"model": "\xff\xfe"}'}, "summary.json: line 1: expected a UTF-8 JSON file"),
        ({"config_json": "42"}, "config.json: expected a JSON object, found a number"),
        ({"noc_json": "[1]"}, "noc.json: [0]: expected an object"),
        ({"summary_json": '{"utilization": {"hbm": "SECRET"}}'}, "summary.json: utilization.hbm"),
        ({"summary_json": '{"utilization": [1]}'}, "summary.json: utilization"),
        ({"mesh_links_json": '{"k": 1000000000, "links": {"0-1": 0.5}}'}, "mesh_links.json: k"),
        ({"mesh_links_json": '{"links": {"0-99999999": 0.5}}'}, "mesh_links.json: links"),
        ({"iterations_csv": b"index,step_ms\n0,\x001\n"}, "iterations.csv: line 2"),
        (
            {"ops_csv": "iteration,where,op,start_us,end_us,op_id\n0,chip0,gemm,SECRET,1,a\n"},
            "ops.csv",
        ),
        ({"iterations_csv": "index,top_cause,top_cause_share\nSECRET,hbm,0.5\n"}, "iterations.csv"),
        (
            {"noc_json": '[{"offered_flits_per_node_cycle": "SECRET"}, {"offered_flits_per_node_cycle": 1}]'},
            "noc.json",
        ),
    ],
)
def test_report_malformed_inputs_are_one_line_naming_the_file(tmp_path, capsys, files, needle):
    pytest.importorskip("matplotlib")
    d = report_dir(tmp_path, **files)
    err = one_line_error(*cli(capsys, "report", str(d))[::2], needle)
    assert "SECRET" not in err
    assert not (d / "report.md").exists()
    no_partial_files(d)


def test_report_refuses_a_directory_without_inputs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    one_line_error(*cli(capsys, "report", str(tmp_path))[::2], "found none of")
    (tmp_path / "f").write_text("x")
    one_line_error(*cli(capsys, "report", str(tmp_path / "f"))[::2], "found a file")


# -- trace gen -----------------------------------------------------------------------------------------------
def trace_gen(capsys, requests: Path, out: str, *extra: str) -> tuple[int, str, str]:
    argv = ["trace", "gen", "--model", "llama-3.1-8b", "--system", "default", "--requests", str(requests)]
    return cli(capsys, *argv, "--out", out, *extra)


def sample(tmp_path: Path, lines: int = 3) -> Path:
    src = tmp_path / "in.csv"
    text = (REPO / "traces" / "azure_conv_200.csv").read_text().splitlines()[: lines + 1]
    src.write_text("\n".join(text) + "\n")
    return src


def test_trace_gen_out_directory_is_refused(tmp_path, capsys):
    src = sample(tmp_path)
    one_line_error(*trace_gen(capsys, src, str(tmp_path))[::2], "--out", "directory")
    one_line_error(*trace_gen(capsys, src, ".")[::2], "--out")


def test_trace_gen_out_equal_to_its_input_is_refused(tmp_path, capsys):
    src = sample(tmp_path)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    one_line_error(*trace_gen(capsys, src, str(src))[::2], "--out", "is an input")
    via = str(tmp_path / "sub" / ".." / "in.csv")
    (tmp_path / "sub").mkdir()
    one_line_error(*trace_gen(capsys, src, via)[::2], "--out", "is an input")
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before


def test_failed_trace_gen_leaves_no_file(tmp_path, capsys):
    src = sample(tmp_path, lines=2)
    with src.open("a") as fh:
        fh.write("2023-11-16 18:40:00.000000,notanumber,5\n")  # the third request is bad
    out = tmp_path / "out.jsonl.gz"
    one_line_error(*trace_gen(capsys, src, str(out))[::2], "in.csv: line 4")
    assert not out.exists()
    no_partial_files(tmp_path)
    out.write_bytes(b"previous")  # an existing output is left as it was
    one_line_error(*trace_gen(capsys, src, str(out))[::2], "in.csv: line 4")
    assert out.read_bytes() == b"previous"
    no_partial_files(tmp_path)


def test_trace_gen_interrupted_leaves_no_file(tmp_path, monkeypatch):
    from sim.model.spec import load_model
    from sim.serving import tracegen
    from sim.serving.mapping import mapping_from
    from sim.system.spec import load_system

    system = load_system("default", {})
    model = load_model("llama-3.1-8b")
    requests, _ = tracegen.synthetic_source(REPO / "traces" / "synthetic_poisson.toml", 4)
    calls = [0]
    real = tracegen.estimate_iteration_ps

    def ctrl_c(*args):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(tracegen, "estimate_iteration_ps", ctrl_c)
    out = tmp_path / "t.jsonl"
    with pytest.raises(KeyboardInterrupt):
        tracegen.generate(model, system, mapping_from(system, {}), requests, out)
    assert not out.exists()
    no_partial_files(tmp_path)


def test_trace_gen_of_no_request_is_refused(tmp_path, capsys):
    src = sample(tmp_path, lines=0)  # the header only
    out = tmp_path / "t.jsonl"
    code, _, err = trace_gen(capsys, src, str(out))
    assert code == 2 and "Traceback" not in err
    assert not out.exists()
