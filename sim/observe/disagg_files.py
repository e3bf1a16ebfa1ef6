"""``memwall run --out DIR`` and ``--timeline FILE`` for a disaggregated run (:mod:`sim.serving.disagg`).

A disaggregated run has two pools of replicas and a KV link between them, so its files name where
each row comes from:

* ``iterations.csv``, ``ops.csv``, ``blame.csv``: every pool replica's rows, prefill replicas first,
  with a leading ``replica`` column naming it (``prefill0``, ``decode1``: the pool and its index, as
  the replicas' hardware is named); iteration indices count per replica, op ids are unique in the run.
* ``requests.csv``: one row per request with its end-to-end figures as the summary defines them
  (:mod:`sim.observe.disagg`: TTFT ends when the request's KV reached its decode replica, TPOT runs
  from there), led by ``prefill_replica`` and ``decode_replica`` (empty for a one-token request,
  which never leaves the prefill pool), then the columns of a single run's file, then
  ``prefill_end_ms`` (the first token computed) and ``kv_transfer_ms``.
* ``transfers.csv``: one row per KV transfer: ``request``, ``from``, ``to``, ``bytes``, ``start_ms``
  (the prefill iteration ended: the transfer asks for its ports), ``sending_ms`` (both ports held:
  the bytes flow), ``end_ms`` (the last byte arrived), ``queued_ms`` (sending - start) and
  ``transfer_ms`` (end - start, queueing included: the summary's ``transfer_ms``).

The timeline gives each pool replica its own processes (``prefill 0: requests``, ``decode 1:
critical path`` ...; a replica's ``requests`` shows what it did of each request), a ``requests``
process with every request end to end (``TTFT`` from arrival to the KV's arrival, then ``decode``),
a ``kv link`` process with one thread per transfer (one span from its start to its end, its bytes
and queueing in ``args``: spans of transfers that wait for the same port overlap, so they cannot
share a thread) and a ``kv link ports`` process with one thread per port showing when it carried
bytes (one transfer at a time: these spans never overlap).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sim.core.atomic import result_dir
from sim.driver.token_driver import TokenDriver
from sim.observe import timeline as tl
from sim.observe import writers as wr
from sim.requests import timing
from sim.serving.disagg import Handed, Handoff, KvLink, Transfer

REQUEST_COLUMNS = (
    "prefill_replica",
    "decode_replica",
    *wr.REQUEST_COLUMNS,
    "prefill_end_ms",
    "kv_transfer_ms",
)
TRANSFER_COLUMNS = (
    "request",
    "from",
    "to",
    "bytes",
    "start_ms",
    "sending_ms",
    "end_ms",
    "queued_ms",
    "transfer_ms",
)
POOLS = ("prefill", "decode")

PID_E2E = 1  # the requests end to end
PID_LINK = 2  # one thread per transfer
PID_PORTS = 3  # one thread per link port


@dataclass(frozen=True)
class DisaggRun:
    """What a finished disaggregated run left behind: each pool's drivers, the hand-off, the link."""

    prefill: list[TokenDriver]
    decode: list[TokenDriver]
    handoff: Handoff
    link: KvLink

    @classmethod
    def of(cls, sim: Any) -> DisaggRun:
        """Find the parts among ``sim.roots`` (drivers ``prefill_runI`` / ``decode_runI``, as
        :func:`sim.experiments.disagg.execute` names them)."""
        pools: dict[str, list[tuple[int, TokenDriver]]] = {p: [] for p in POOLS}
        for root in sim.roots:
            if isinstance(root, TokenDriver):
                for p in POOLS:
                    tail = root.name.removeprefix(f"{p}_run")
                    if tail != root.name and tail.isdigit():
                        pools[p].append((int(tail), root))
        handoff = next(r for r in sim.roots if isinstance(r, Handoff))
        link = next(r for r in sim.roots if isinstance(r, KvLink))
        pre, dec = ([d for _, d in sorted(pools[p], key=lambda x: x[0])] for p in POOLS)
        return cls(pre, dec, handoff, link)

    def replicas(self) -> list[tuple[str, int, TokenDriver]]:
        """(pool, index, driver) of every pool replica, prefill first."""
        both = (self.prefill, self.decode)
        return [(p, i, d) for p, ds in zip(POOLS, both, strict=True) for i, d in enumerate(ds)]

    def transfers(self) -> list[Transfer]:
        """The completed transfers in the order they started (then by request id)."""
        return sorted(self.link.log, key=lambda t: (t.start_ps, t.request))

    def records(self) -> list[tuple[Any, Handed | None]]:
        """(request, its hand-off record or None: never prefilled) for every request, by id."""
        h = self.handoff
        return [(h.originals[i], h.records.get(i)) for i in sorted(h.originals)]


# -- --out --------------------------------------------------------------------------------------------


def write_disagg_run(out: str | Path, summary: dict[str, Any], sim: Any) -> Path:
    """Write a disaggregated run's files as the directory ``out``, whole (see the module doc and
    :func:`sim.observe.writers.write_run`, which writes the same JSON files)."""
    run = DisaggRun.of(sim)
    reps = [(f"{p}{i}", d) for p, i, d in run.replicas()]
    drivers = [d for _, d in reps]
    with result_dir(out) as d:
        wr.write_json(d, summary, sim)
        wr._csv(d / "requests.csv", REQUEST_COLUMNS, _request_rows(run))
        wr._csv(d / "transfers.csv", TRANSFER_COLUMNS, _transfer_rows(run))
        if any(x.op_log for x in drivers):
            firsts = wr._first_ids([x.op_log for x in drivers])
            ops = (
                [label, *row]
                for (label, x), first in zip(reps, firsts, strict=True)
                for row in wr._op_rows(x.op_log, first)
            )
            wr._csv(d / "ops.csv", ("replica", *wr.OP_COLUMNS), ops)
            blame = (
                [label, *row]
                for (label, x), first in zip(reps, firsts, strict=True)
                for row in wr._blame_rows(x.op_log, first)
            )
            wr._csv(d / "blame.csv", ("replica", *wr.BLAME_COLUMNS), blame)
        its = ([label, *row] for label, x in reps for row in wr._iteration_rows(x.iterations))
        wr._csv(d / "iterations.csv", ("replica", *wr.ITERATION_COLUMNS), its)
    return Path(out)


def _ms(ps: int) -> float | str:
    return ps / timing.PS_PER_MS if ps >= 0 else ""


def _request_rows(run: DisaggRun) -> Iterable[list[Any]]:
    """One row per request: the summary's TTFT (to the KV's arrival), TPOT and end-to-end latency."""
    for req, rec in run.records():
        if rec is None:  # the run stopped before its prefill
            row = ["", "", req.id, req.arrival_ps / 1e9, req.prompt_tokens, req.output_tokens, 0]
            yield row + [""] * (len(REQUEST_COLUMNS) - len(row))
            continue
        started = rec.generated > 0 and rec.delivered_ps >= 0
        tpot = timing.tpot_ms(rec.delivered_ps, rec.last_token_ps, rec.generated) if started else None
        t = rec.transfer
        yield [
            f"prefill{rec.prefill}" if rec.prefill >= 0 else "",
            f"decode{rec.decode}" if rec.decode >= 0 else "",
            req.id,
            req.arrival_ps / 1e9,
            req.prompt_tokens,
            req.output_tokens,
            rec.generated,
            timing.ttft_ms(req.arrival_ps, rec.delivered_ps) if started else "",
            "" if tpot is None else tpot,
            timing.e2e_ms(req.arrival_ps, rec.last_token_ps) if started and rec.last_token_ps >= 0 else "",
            _ms(rec.prefill_end_ps),
            t.duration_ps / timing.PS_PER_MS if t is not None and t.end_ps >= 0 else "",
        ]


def _transfer_rows(run: DisaggRun) -> Iterable[list[Any]]:
    for t in run.transfers():
        yield [
            t.request,
            f"prefill{t.source}",
            f"decode{t.target}",
            t.nbytes,
            t.start_ps / timing.PS_PER_MS,
            t.sending_ps / timing.PS_PER_MS,
            t.end_ps / timing.PS_PER_MS,
            t.queued_ps / timing.PS_PER_MS,
            t.duration_ps / timing.PS_PER_MS,
        ]


# -- --timeline -----------------------------------------------------------------------------------


def write_disagg_timeline(
    path: str | Path, sim: Any, max_ops: int | None = None, keep: str = "first"
) -> list[str]:
    """Write a disaggregated run as trace-event JSON (see the module doc); each pool replica gets an
    equal share of the op budget (:func:`sim.observe.timeline.write_timeline`); one message per cut."""
    if max_ops is None:
        max_ops = tl.MAX_OPS
    run = DisaggRun.of(sim)
    reps = [(f"{p}{i}", d) for p, i, d in run.replicas()]
    share = max_ops // len(reps)
    cuts = [tl.select_iterations(d.op_log, len(d.iterations), share, keep) for _, d in reps]
    events: list[dict] = [*_requests_e2e(run), *_link(run)]
    for slot, ((pool, index, d), cut) in enumerate(zip(run.replicas(), cuts, strict=True), 1):
        bare = SimpleNamespace(records={}, iterations=d.iterations, op_log=d.op_log)  # requests: below
        events += tl._as_replica(tl._events(bare, cut, share), slot, f"{pool} {index}")
        events += _replica_requests(run, pool, index, tl.PID_REQUESTS + tl.PIDS_PER_REPLICA * slot)
    other: dict[str, Any] = {
        "generator": "memwall run --timeline",
        "time": "simulated; ts/dur in microseconds",
        "iterations": sum(len(d.iterations) for _, d in reps),
        "ops": sum(len(d.op_log) for _, d in reps),
        "op_budget": max_ops,
        "replicas": [label for label, _ in reps],
        "transfers": len(run.link.log),
    }
    for (label, _), cut in zip(reps, cuts, strict=True):
        if cut is not None:
            other.setdefault("truncated", []).append(f"{label}: {cut.message(share)}")
            other[f"{label}_iterations_with_ops"] = sorted(cut.kept)
    tl.write_doc(path, events, other)
    return list(other.get("truncated", []))


def _process(pid: int, name: str) -> Iterable[dict]:
    yield tl._meta("process_name", pid, 0, {"name": name})
    yield tl._meta("process_sort_index", pid, 0, {"sort_index": pid})


def _thread(pid: int, tid: int, name: str) -> Iterable[dict]:
    yield tl._meta("thread_name", pid, tid, {"name": name})
    yield tl._meta("thread_sort_index", pid, tid, {"sort_index": tid})


def _base_args(req: Any, rec: Handed | None) -> dict[str, Any]:
    return {
        "id": req.id,
        "prompt_tokens": req.prompt_tokens,
        "output_tokens": req.output_tokens,
        "generated": 0 if rec is None else rec.generated,
        "prefill_replica": f"prefill{rec.prefill}" if rec is not None and rec.prefill >= 0 else "",
        "decode_replica": f"decode{rec.decode}" if rec is not None and rec.decode >= 0 else "",
    }


def _requests_e2e(run: DisaggRun) -> Iterable[dict]:
    """Every request as the client saw it: ``TTFT`` (arrival to the KV's arrival at its decode
    replica, or to its prefill's end for a one-token request) and ``decode`` (to the last token)."""
    end_ps = max((it.end_ps for _, _, d in run.replicas() for it in d.iterations), default=0)
    yield from _process(PID_E2E, "requests (end to end)")
    for req, rec in run.records():
        yield from _thread(PID_E2E, req.id, f"request {req.id}")
        args = _base_args(req, rec)
        if rec is None or rec.delivered_ps < 0:  # no first token delivered before the run ended
            yield tl._x(
                "queued", "request", req.arrival_ps, max(req.arrival_ps, end_ps), PID_E2E, req.id, args
            )
            continue
        ttft = {**args, "ttft_ms": timing.ttft_ms(req.arrival_ps, rec.delivered_ps)}
        if rec.transfer is not None:
            ttft["kv_transfer_ms"] = rec.transfer.duration_ps / timing.PS_PER_MS
        yield tl._x("TTFT", "request", req.arrival_ps, rec.delivered_ps, PID_E2E, req.id, ttft)
        if rec.last_token_ps > rec.delivered_ps:
            tpot = timing.tpot_ms(rec.delivered_ps, rec.last_token_ps, rec.generated)
            yield tl._x(
                "decode",
                "request",
                rec.delivered_ps,
                rec.last_token_ps,
                PID_E2E,
                req.id,
                {**args, "tpot_ms": tpot},
            )


def _replica_requests(run: DisaggRun, pool: str, index: int, pid: int) -> Iterable[dict]:
    """What replica ``pool index`` did of each request it served: on a prefill replica ``queued``
    (arrival to admission) and ``prefill`` (to the first token); on a decode replica ``waiting``
    (the KV arrived, no seat or KV room yet) and ``decode`` (admission to the last token)."""
    for req, rec in run.records():
        if rec is None or (rec.prefill if pool == "prefill" else rec.decode) != index:
            continue
        args = _base_args(req, rec)
        rid = req.id
        if pool == "prefill":
            spans = [
                ("queued", req.arrival_ps, rec.prefill_admitted_ps),
                ("prefill", rec.prefill_admitted_ps, rec.prefill_end_ps),
            ]
        else:
            spans = [
                ("waiting", rec.delivered_ps, rec.decode_admitted_ps),
                ("decode", rec.decode_admitted_ps, rec.last_token_ps),
            ]
        drawn = [(name, a, b) for name, a, b in spans if 0 <= a < b]
        if not drawn:
            continue
        yield from _thread(pid, rid, f"request {rid}")
        for name, a, b in drawn:
            yield tl._x(name, "request", a, b, pid, rid, {**args, "ms": (b - a) / timing.PS_PER_MS})


def _link(run: DisaggRun) -> Iterable[dict]:
    """The ``kv link`` process (a thread per transfer, a span from its start to its end) and the
    ``kv link ports`` process (a thread per port, a span while it carried a transfer's bytes)."""
    link = run.link
    yield from _process(PID_LINK, "kv link")
    for t in run.transfers():
        src, dst = f"prefill{t.source}", f"decode{t.target}"
        yield from _thread(PID_LINK, t.request, f"request {t.request}")
        args = {
            "request": t.request,
            "from": src,
            "to": dst,
            "bytes": t.nbytes,
            "queued_us": tl._us(t.queued_ps),
            "sending_at_us": tl._us(t.sending_ps),
            "transfer_ms": t.duration_ps / timing.PS_PER_MS,
        }
        yield tl._x(f"KV {src} -> {dst}", "kv transfer", t.start_ps, t.end_ps, PID_LINK, t.request, args)
    yield from _process(PID_PORTS, "kv link ports")
    ports = [("egress", i, f"egress prefill{i}") for i in range(len(link.egress))]
    ports += [("ingress", i, f"ingress decode{i}") for i in range(len(link.ingress))]
    for tid, (side, i, name) in enumerate(ports):
        yield from _thread(PID_PORTS, tid, name)
        for t in run.transfers():
            if (t.source if side == "egress" else t.target) != i:
                continue
            busy = link.serialise_ps(t.nbytes)
            args = {"request": t.request, "bytes": t.nbytes, "busy_us": tl._us(busy)}
            yield tl._x(
                f"KV request {t.request}", "kv port", t.sending_ps, t.sending_ps + busy, PID_PORTS, tid, args
            )
