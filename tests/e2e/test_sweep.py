"""memwall sweep: grids of ``memwall run`` cells on dask.distributed, resumable and crash-tolerant."""

import argparse
import csv
import json
import os
import signal

import pytest

distributed = pytest.importorskip("dask.distributed")

from sim.core.errors import ConfigError  # noqa: E402
from sim.experiments import sweep  # noqa: E402

TINY = {"system": "default", "model": "llama-3.1-8b", "batch": 1, "context": 64, "steps": 2}


def _spec(grid, base=TINY, name="t"):
    return sweep.parse_spec({"sweep": {"name": name}, "base": dict(base), "grid": grid})


def _rows(out):
    with (out / "results.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes (as on a 2-core CI box)."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture
def thread_client():
    """Workers in this process, so that a monkeypatched cell function is the one that runs."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def test_spec_grid_cells_and_stable_ids():
    spec = sweep.parse_spec(
        {
            "base": {"model": "llama-3.1-8b", "batch": 1, "set": {"mapping.kv": "hbm"}},
            "grid": {"mapping.tp": [1, 2], "context": [64, 128]},
            "cells": [{"steps": 2}, {"steps": 2}, {"steps": 3, "chip.memory.hbf.prefetch.window": "2MiB"}],
        }
    )
    assert len(spec.cells) == 8  # the duplicate explicit cell collapses
    first = spec.cells[0]
    assert first["set"] == {"mapping.kv": "hbm", "mapping.tp": 1} and first["context"] == 64
    again = sweep.parse_spec({"grid": {"context": [64, 128], "mapping.tp": [1, 2]}, "base": {"batch": 1}})
    assert sorted(again.ids()) == sorted(
        sweep.parse_spec({"base": {"batch": 1}, "grid": {"mapping.tp": [1, 2], "context": [64, 128]}}).ids()
    )
    with pytest.raises(ConfigError, match="whole number"):
        sweep.parse_spec({"base": {"batch": "1"}})
    with pytest.raises(ConfigError, match="unknown table"):
        sweep.parse_spec({"grdi": {}})


def test_grid_writes_rows_and_rerun_skips(client, tmp_path):
    spec = _spec({"mapping.tp": [1, 2], "context": [64, 128]})
    out = tmp_path / "sw"
    report = sweep.run_sweep(spec, out, client)
    assert report.ok and len(report.computed) == 4 and report.skipped == 0
    rows = _rows(out)
    assert len(rows) == 4
    assert {r["status"] for r in rows} == {"ok"}
    assert {(r["mapping.tp"], r["context"]) for r in rows} == {
        ("1", "64"),
        ("1", "128"),
        ("2", "64"),
        ("2", "128"),
    }
    for r in rows:
        assert float(r["tpot_ms.mean"]) > 0 and float(r["step_time_ms.p99"]) > 0
        assert float(r["tokens_per_s"]) > 0 and float(r["energy_j_per_token"]) > 0
        assert r["result.mapping.tp"] == r["mapping.tp"]  # the resolved mapping, beside the setting
    for cid in spec.ids():
        rec = json.loads((out / "cells" / f"{cid}.json").read_text())
        assert (
            rec["status"] == "ok" and rec["config"]["mapping"]["tp"] == rec["settings"]["set"]["mapping.tp"]
        )
    assert not list((out / "cells").glob("*.tmp"))

    again = sweep.run_sweep(spec, out, client)
    assert again.computed == [] and again.skipped == 4 and len(_rows(out)) == 4


def test_bad_cell_is_reported_and_good_cells_finish(client, tmp_path):
    spec = _spec({"model": ["llama-3.1-8b", "no-such-model"], "mapping.tp": [1, 2]})
    out = tmp_path / "sw"
    report = sweep.run_sweep(spec, out, client)
    assert len(report.computed) == 4 and len(report.errors) == 2
    rows = {(r["model"], r["mapping.tp"]): r for r in _rows(out)}
    assert len(rows) == 4
    for tp in ("1", "2"):
        assert rows["llama-3.1-8b", tp]["status"] == "ok"
        bad = rows["no-such-model", tp]
        assert bad["status"] == "error" and "no-such-model" in bad["error"] and "\n" not in bad["error"]
        assert bad["tpot_ms.mean"] == ""
    bad_id = next(iter(report.errors))
    assert json.loads((out / "cells" / f"{bad_id}.json").read_text())["status"] == "error"
    # a re-run retries only the failed cells
    assert sorted(sweep.run_sweep(spec, out, client).computed) == sorted(report.errors)


def test_crashing_cell_is_retried_then_recorded(thread_client, tmp_path, monkeypatch):
    calls: dict[int, int] = {}
    real = sweep.simulate

    def flaky(settings):
        ctx = settings["context"]
        calls[ctx] = calls.get(ctx, 0) + 1
        if ctx == 65:
            raise RuntimeError("boom\nsecond line")
        if ctx == 66 and calls[ctx] == 1:
            raise RuntimeError("transient")
        return real(settings)

    monkeypatch.setattr(sweep, "simulate", flaky)
    spec = _spec({"context": [64, 65, 66]})
    report = sweep.run_sweep(spec, tmp_path, thread_client, retries=2)
    assert calls == {64: 1, 65: 3, 66: 2}
    assert list(report.errors.values()) == ["RuntimeError: boom"]
    status = {r["context"]: r["status"] for r in _rows(tmp_path)}
    assert status == {"64": "ok", "65": "error", "66": "ok"}


def test_resume_after_a_killed_worker(tmp_path):
    spec = _spec({"context": [64, 96, 128, 160, 192, 224], "steps": [4]})
    killed: list[tuple[str, list[str]]] = []
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as c,
    ):

        def kill_one(cid, record):
            if killed:
                return
            busy = {w: list(keys) for w, keys in c.processing().items() if keys}
            if not busy:
                return
            addr, keys = next(iter(busy.items()))
            pid = c.run(os.getpid, workers=[addr])[addr]
            os.kill(pid, signal.SIGKILL)
            killed.append((addr, keys))

        report = sweep.run_sweep(spec, tmp_path, c, on_cell=kill_one)
    assert killed, "no worker was busy to kill"
    assert report.ok and sorted(report.computed) == sorted(spec.ids())
    rows = _rows(tmp_path)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}


def test_cli_sweep(tmp_path, capsys):
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[sweep]\nname = "cli"\n[base]\nmodel = "llama-3.1-8b"\nbatch = 1\nsteps = 2\n'
        '[grid]\ncontext = [64, 128]\n[[cells]]\n"mapping.tp" = 1\n[[cells]]\nmodel = "nope"\n'
    )
    parser = argparse.ArgumentParser(prog="memwall")
    sweep.add_parser(parser.add_subparsers(dest="command"), argparse.ArgumentParser)
    args = parser.parse_args(["sweep", str(toml), "--workers", "2", "--out", str(tmp_path / "o")])
    assert args.func(args) == 2  # the two 'nope' cells fail (exit 2, one error line each)
    captured = capsys.readouterr()
    assert "4 cells: 0 already done, 2 ok, 2 failed" in captured.out
    assert captured.err.count("memwall: error: cell") == 2
    assert len(_rows(tmp_path / "o")) == 4
    assert sweep.load_spec(toml).name == "cli"
