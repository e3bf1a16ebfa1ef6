"""One Scheduler protocol for every way batches are decided, and typed blame."""

import csv
from collections import defaultdict

import pytest

from sim.core.registry import items
from sim.driver.blame import Blame, Cause, collective, memory_bandwidth
from sim.experiments.run import RunSpec, execute
from sim.model.spec import load_model
from sim.requests.record import Request
from sim.serving.decode_trace import ReplayScheduler
from sim.serving.mapping import mapping_from
from sim.serving.scheduler import Batch, BatchEntry, FixedDecodeBatch, Scheduler
from sim.system.spec import load_system


def test_every_scheduler_implements_the_protocol():
    assert issubclass(FixedDecodeBatch, Scheduler)
    assert issubclass(ReplayScheduler, Scheduler)
    policies = list(items("batching"))
    assert policies
    for _, cls in policies:
        assert issubclass(cls, Scheduler)
    with pytest.raises(TypeError):
        Scheduler()


class OneShot(Scheduler):
    """The smallest scheduler: every request decodes alone, once, after its prefill."""

    def __init__(self):
        self.waiting: list[Request] = []
        self.index = 0

    def add(self, request, now):
        self.waiting.append(request)

    def next_batch(self, now):
        if not self.waiting:
            return None
        r = self.waiting.pop(0)
        entry = BatchEntry(r, "prefill", r.prompt_tokens, r.prompt_tokens, True)
        self.index += 1
        return Batch(self.index - 1, now, (entry,))

    def complete(self, batch, now):
        return []

    @property
    def idle(self):
        return not self.waiting

    @property
    def num_waiting(self):
        return len(self.waiting)


def test_a_new_scheduler_drives_a_run_through_the_protocol_alone():
    system = load_system("default")
    model = load_model("llama-3.1-8b")
    requests = [Request(i, i * 10**9, 64, 1) for i in range(3)]
    spec = RunSpec(model, system, mapping_from(system), requests)
    summary, driver, _ = execute(spec, scheduler=OneShot())
    assert summary["iterations"] == 3 and summary["tokens"] == 3
    assert all(r.generated == 1 for r in driver.records.values())


def test_cause_labels_and_fractions():
    b = Blame()
    b.add(memory_bandwidth("hbm"), 3.0)
    b.add(collective("allreduce"), 1.0)
    b.add(memory_bandwidth("hbm"), 1.0)
    b.add(Cause("x"), 0.0)  # nothing blamed for no time
    assert b.fractions() == {"collective (allreduce)": 0.2, "memory bandwidth (hbm)": 0.8}
    assert b.top(1) == [("memory bandwidth (hbm)", 4.0)]


def test_blame_csv_accounts_for_every_op_exactly(tmp_path):
    from sim.cli import main

    out = tmp_path / "run"
    assert main(["run", "--limit", "3", "--out", str(out), "--quiet"]) == 0
    ops = {r["op_id"]: r for r in csv.DictReader((out / "ops.csv").open())}
    blamed: dict[str, float] = defaultdict(float)
    for r in csv.DictReader((out / "blame.csv").open()):
        assert r["cause"] and r["unit"] in {"memory", "compute", "compute wait", "fabric", "software"}
        assert r["label"] == (f"{r['cause']} ({r['resource']})" if r["resource"] else r["cause"])
        blamed[r["op_id"]] += float(r["us"])
    assert ops and set(blamed) <= set(ops)
    for op_id, r in ops.items():
        duration = float(r["end_us"]) - float(r["start_us"])
        assert blamed.get(op_id, 0.0) == pytest.approx(duration, abs=1e-6), r
