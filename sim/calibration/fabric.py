"""Calibrating a fabric's alpha (latency) and beta (seconds per byte) against measured collectives.

The reference data are NCCL timings measured by Vidur (microsoft/vidur @ 7d475133,
``data/profiling/network/{a100_dgx,h100_dgx}/{all_reduce,send_recv}.csv``, MIT): one row per
message size with the min / max / mean / median / std of the NCCL kernel time in milliseconds,
``size`` in bytes (Vidur's profiler writes ``size * 2`` for its fp16 buffers), ``num_workers`` ranks
and ``devices_per_node`` of them on one node (``send_recv`` with ``devices_per_node = 1`` crosses
nodes, i.e. InfiniBand; ``devices_per_node = num_workers`` stays on one node's NVLink).

Two closed forms are fitted by weighted least squares:

* point to point (``send_recv``): ``t = alpha + n * beta``;
* ring all-reduce over ``p`` ranks: ``t = 2 (p - 1) * alpha' + 2 (p - 1) / p * n * beta``, where
  ``alpha'`` is the latency of one ring step. This is exactly what the simulator's ``ring``
  algorithm charges on a single-switch fabric: ``2 (p - 1)`` dependent transfers of ``n / p`` bytes,
  each costing the zero-load latency plus one cycle per flit.

Measured NCCL times include software (kernel launch, proxy and flag handshakes, protocol
switching between LL, LL128 and Simple); the fit puts all of that into alpha. The simulator has
one latency per transfer and no per-collective launch cost, so one alpha cannot match both a lone
``send_recv`` (~5-8 us) and the per-step cost of an 8-rank ring (~2 us): the fabric is calibrated on
the collective that matters for tensor-parallel decode (the all-reduce), and the point-to-point
mismatch is reported by :func:`compare_send_recv`.

Weighting: the measured sizes are spaced 8 KiB apart below 1 MiB and 128 KiB apart above, so an
ordinary fit would be decided by the (numerous) large messages. ``"octave"`` weighting (the
default) minimises relative error with every power-of-two band of sizes carrying the same total
weight; ``"relative"`` minimises plain relative error; ``"absolute"`` is ordinary least squares.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.core.errors import ConfigError
from sim.fabric.router import RouterParams
from sim.system.spec import launch_for

WEIGHTINGS = ("octave", "relative", "absolute")
STATS = ("min", "max", "mean", "median")


@dataclass(frozen=True)
class Sample:
    """One measured message size: bytes and the chosen statistic of its time (seconds)."""

    nbytes: int
    seconds: float
    min_s: float
    max_s: float


def read_vidur_csv(
    path: str | Path,
    *,
    num_workers: int,
    devices_per_node: int | None = None,
    stat: str = "median",
) -> list[Sample]:
    """Rows of a Vidur network-profiling CSV for one group, sorted by size (times in seconds)."""
    path = Path(path)
    if stat not in STATS:
        raise ConfigError(f"expected stat one of {', '.join(STATS)}, found {stat!r}", where="stat")
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise ConfigError("file not found", where=str(path)) from None
    out = []
    for i, row in enumerate(rows):
        where = f"{path}: row {i + 2}"
        collective = row.get("collective")
        if collective is None or "size" not in row or "num_workers" not in row:
            raise ConfigError("expected columns collective, size, num_workers", where=where)
        col = f"time_stats.{collective}.{stat}"
        if col not in row:
            raise ConfigError(f"expected a column {col!r}", where=where)
        try:
            workers = int(row["num_workers"])
            per_node = int(row.get("devices_per_node") or workers)
            if workers != num_workers or (devices_per_node is not None and per_node != devices_per_node):
                continue
            ms = float(row[col])
            lo = float(row[f"time_stats.{collective}.min"])
            hi = float(row[f"time_stats.{collective}.max"])
            out.append(Sample(int(row["size"]), ms * 1e-3, lo * 1e-3, hi * 1e-3))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"malformed row: {exc}", where=where) from None
    if not out:
        raise ConfigError(
            f"no rows with num_workers = {num_workers}"
            + ("" if devices_per_node is None else f" and devices_per_node = {devices_per_node}"),
            where=str(path),
        )
    return sorted(out, key=lambda s: s.nbytes)


# -- closed forms -------------------------------------------------------------------------------------
def send_recv_seconds(nbytes: float, alpha: float, beta: float) -> float:
    """Point to point: ``alpha + n beta``."""
    return alpha + nbytes * beta


def ring_allreduce_seconds(nbytes: float, ranks: int, alpha: float, beta: float) -> float:
    """Ring all-reduce: ``2 (p-1) alpha + 2 (p-1)/p n beta`` (``alpha`` per ring step)."""
    steps = 2 * (ranks - 1)
    return steps * alpha + steps / ranks * nbytes * beta


@dataclass(frozen=True)
class AlphaBetaFit:
    """A fitted alpha-beta model and how well it reproduces the samples it was fitted to."""

    model: str  # "send_recv" or "ring_allreduce"
    ranks: int
    alpha_s: float  # per message (send_recv) or per ring step (ring_allreduce)
    beta_s_per_byte: float
    points: int
    rms_rel_error: float
    max_rel_error: float
    weighting: str

    @property
    def bandwidth_Bps(self) -> float:
        return 1.0 / self.beta_s_per_byte

    def predict(self, nbytes: float) -> float:
        if self.model == "send_recv":
            return send_recv_seconds(nbytes, self.alpha_s, self.beta_s_per_byte)
        return ring_allreduce_seconds(nbytes, self.ranks, self.alpha_s, self.beta_s_per_byte)


def _weights(samples: Sequence[Sample], weighting: str) -> list[float]:
    if weighting not in WEIGHTINGS:
        raise ConfigError(
            f"expected weighting one of {', '.join(WEIGHTINGS)}, found {weighting!r}", where="weighting"
        )
    if weighting == "absolute":
        return [1.0] * len(samples)
    if weighting == "relative":
        return [1.0 / s.seconds for s in samples]
    per_octave = Counter(_octave(s.nbytes) for s in samples)
    # residual weight w: squared weight 1/count per octave, so each octave sums to the same total
    return [1.0 / (s.seconds * math.sqrt(per_octave[_octave(s.nbytes)])) for s in samples]


def _octave(nbytes: int) -> int:
    return max(0, int(nbytes).bit_length() - 1)


def _line_fit(xs: Sequence[float], ys: Sequence[float], ws: Sequence[float]) -> tuple[float, float]:
    """Weighted least squares for ``y = a + b x`` minimising ``sum (w (a + b x - y))^2``."""
    w2 = [w * w for w in ws]
    s = sum(w2)
    sx = sum(w * x for w, x in zip(w2, xs, strict=True))
    sy = sum(w * y for w, y in zip(w2, ys, strict=True))
    sxx = sum(w * x * x for w, x in zip(w2, xs, strict=True))
    sxy = sum(w * x * y for w, x, y in zip(w2, xs, ys, strict=True))
    det = s * sxx - sx * sx
    if det <= 0:
        raise ConfigError("need samples of at least two different sizes to fit alpha and beta", where="fit")
    b = (s * sxy - sx * sy) / det
    a = (sy - b * sx) / s
    return a, b


def _fit(samples: Sequence[Sample], model: str, ranks: int, weighting: str) -> AlphaBetaFit:
    if len(samples) < 2:
        raise ConfigError(f"need at least 2 samples to fit, found {len(samples)}", where="fit")
    ws = _weights(samples, weighting)
    a, b = _line_fit([s.nbytes for s in samples], [s.seconds for s in samples], ws)
    if model == "send_recv":
        alpha, beta = a, b
    else:
        steps = 2 * (ranks - 1)
        alpha, beta = a / steps, b * ranks / steps
    if alpha <= 0 or beta <= 0:
        raise ConfigError(
            f"fit gave a non-physical model (alpha {alpha:.3g} s, beta {beta:.3g} s/B)", where="fit"
        )
    fit = AlphaBetaFit(model, ranks, alpha, beta, len(samples), 0.0, 0.0, weighting)
    rel = [fit.predict(s.nbytes) / s.seconds - 1 for s in samples]
    return AlphaBetaFit(
        model,
        ranks,
        alpha,
        beta,
        len(samples),
        math.sqrt(sum(r * r for r in rel) / len(rel)),
        max(abs(r) for r in rel),
        weighting,
    )


def fit_send_recv(samples: Sequence[Sample], weighting: str = "octave") -> AlphaBetaFit:
    """Fit ``t = alpha + n beta`` to point-to-point samples."""
    return _fit(samples, "send_recv", 2, weighting)


def fit_ring_allreduce(samples: Sequence[Sample], ranks: int, weighting: str = "octave") -> AlphaBetaFit:
    """Fit ``t = 2(p-1) alpha' + 2(p-1)/p n beta`` to all-reduce samples of ``ranks`` ranks."""
    if ranks < 2:
        raise ConfigError(f"expected ranks >= 2, found {ranks}", where="ranks")
    return _fit(samples, "ring_allreduce", ranks, weighting)


def local_median(samples: Sequence[Sample], nbytes: int, window: float = 0.25) -> tuple[float, int]:
    """Median time of the samples within a factor ``1 + window`` of ``nbytes`` (and how many)."""
    lo, hi = nbytes / (1 + window), nbytes * (1 + window)
    times = [s.seconds for s in samples if lo <= s.nbytes <= hi]
    if not times:
        raise ConfigError(f"no measured sizes within {window:.0%} of {nbytes} B", where="compare")
    return statistics.median(times), len(times)


# -- from a fit to fabric parameters -------------------------------------------------------------------
def fabric_parameters(
    alpha_s: float,
    beta_s_per_byte: float,
    clock_hz: float,
    router: RouterParams | None = None,
    hops: int = 0,
    link_cycles: int = 1,
) -> dict[str, int]:
    """``flit_bytes``, ``inject_latency`` and ``eject_latency`` that reproduce a fitted alpha-beta.

    A transfer over ``hops`` router-to-router links costs, at zero load,
    ``inject + (hops + 1) pipeline + hops link + eject + flits - 1`` cycles (the network's closed
    form), and a link moves ``flit_bytes`` per cycle. So ``flit_bytes = 1 / (beta clock)`` and the
    latency left after the routers and links is split evenly between injection (sender software)
    and ejection (receiver software).
    """
    router = router or RouterParams()
    flit_bytes = max(1, round(1.0 / (beta_s_per_byte * clock_hz)))
    alpha_cycles = round(alpha_s * clock_hz)
    fixed = (hops + 1) * router.pipeline + hops * link_cycles
    rest = alpha_cycles - fixed
    if rest < 2:
        raise ConfigError(
            f"alpha {alpha_s:.3g} s is {alpha_cycles} cycles, less than the routers and links alone "
            f"({fixed} cycles) plus one cycle each for injection and ejection",
            where="alpha",
        )
    return {"flit_bytes": flit_bytes, "inject_latency": rest - rest // 2, "eject_latency": rest // 2}


def implied_alpha_beta(system: Any, hops: int = 0) -> tuple[float, float]:
    """The (alpha per transfer, beta) a system's fabric charges over ``hops`` links, in seconds."""
    net, router = system.network, system.router
    link = net.link_latency or max(
        (lat for *_, lat in system.topology.edges(data="latency", default=1)), default=1
    )
    cycles = net.inject_latency + (hops + 1) * router.pipeline + hops * link + net.eject_latency
    return cycles / net.clock, 1.0 / (net.flit_bytes * net.clock)


# -- running the simulator on a system's fabric ----------------------------------------------------
def simulate_allreduce_seconds(
    system: Any, nbytes: int, ranks: Sequence[int] | None = None, algorithm: str = "ring"
) -> float:
    """Simulated all-reduce time (seconds) on ``system``'s fabric at its own fidelity."""
    from sim.experiments.collective import run_collective
    from sim.fabric.collectives import CollectiveCase

    group = tuple(range(system.chips)) if ranks is None else tuple(ranks)
    case = CollectiveCase("allreduce", algorithm, int(nbytes), group)
    fidelity = system.fabric_fidelity if system.fabric_fidelity in ("flit", "message") else "message"
    result = run_collective(system.topology, case, system.network, system.router, fidelity=fidelity)
    return result["time_us"] * 1e-6


def simulate_transfer_seconds(system: Any, nbytes: int, src: int = 0, dst: int = 1) -> float:
    """Simulated time of one ``src`` -> ``dst`` message on ``system``'s fabric (message level)."""
    from sim.core.simulation import Simulation
    from sim.fabric.message_network import MessageNetwork

    sim = Simulation(seed=0)
    net = MessageNetwork(sim, "net", system.topology, system.network, system.router)
    sim.start()
    done = net.transfer(src, dst, int(nbytes))
    sim.run(until=done)
    return sim.now * 1e-12


@dataclass(frozen=True)
class Comparison:
    """Simulated versus measured time at one message size."""

    nbytes: int
    measured_s: float  # local median of the measured medians (see local_median)
    measured_points: int
    simulated_s: float

    @property
    def rel_error(self) -> float:
        return self.simulated_s / self.measured_s - 1


def compare_allreduce(
    system: Any, samples: Sequence[Sample], sizes: Iterable[int], window: float = 0.25
) -> list[Comparison]:
    """Simulated ring all-reduce over every chip versus the measured local medians, per size."""
    out = []
    for n in sizes:
        measured, count = local_median(samples, n, window)
        out.append(Comparison(n, measured, count, simulate_allreduce_seconds(system, n)))
    return out


def compare_send_recv(
    system: Any, samples: Sequence[Sample], sizes: Iterable[int], window: float = 0.25
) -> list[Comparison]:
    """Simulated single transfer (chip 0 -> 1) versus measured send_recv local medians, per size."""
    out = []
    for n in sizes:
        measured, count = local_median(samples, n, window)
        out.append(Comparison(n, measured, count, simulate_transfer_seconds(system, n)))
    return out


def format_comparison(rows: Iterable[Comparison]) -> str:
    """A small fixed-width table (bytes, measured us, simulated us, error) for reports."""
    lines = [f"{'bytes':>11} {'measured_us':>12} {'simulated_us':>13} {'error':>7}"]
    for r in rows:
        lines.append(
            f"{r.nbytes:>11} {r.measured_s * 1e6:>12.1f} {r.simulated_s * 1e6:>13.1f} {r.rel_error:>+7.0%}"
        )
    return "\n".join(lines)


# -- all-reduce over every group size: a launch per group size, one hop latency, one link bandwidth --
GROUP_SIZES = (2, 4, 8)


def group_allreduce_seconds(
    nbytes: float, ranks: int, launch_s: float, alpha_s: float, bandwidth: float
) -> float:
    """``launch + 2(p-1) alpha + 2(p-1)/p n / bandwidth``: what the simulator charges a ring
    all-reduce on a single-switch fabric whose transfers cost ``alpha`` plus bytes over the link,
    after the collective's launch (:func:`launch_for`)."""
    steps = 2 * (ranks - 1)
    return launch_s + steps * alpha_s + steps / ranks * nbytes / bandwidth


@dataclass(frozen=True)
class GroupFit:
    """A launch latency per group size, a per-transfer alpha and a link bandwidth, with the error
    they leave per group size (median and 90th percentile of |relative error| over the rows)."""

    launch_s: dict[int, float]
    alpha_s: float
    bandwidth_Bps: float
    error: dict[int, dict[str, float]]

    def predict(self, nbytes: float, ranks: int) -> float:
        return group_allreduce_seconds(
            nbytes, ranks, launch_for(self.launch_s, ranks), self.alpha_s, self.bandwidth_Bps
        )


def _abs_rel(predicted: list[float], measured: list[float]) -> tuple[float, float]:
    from sim.stats.percentiles import percentile

    err = [abs(p / m - 1) for p, m in zip(predicted, measured, strict=True)]
    return percentile(err, 50), percentile(err, 90)


def fit_allreduce_groups(samples: dict[int, Sequence[Sample]]) -> GroupFit:
    """Fit launches, alpha and bandwidth to all-reduce samples of several group sizes at once,
    minimising the sum over group sizes of (median + p90) |relative error| (deterministic search)."""
    from sim.calibration.search import pattern_search

    if not samples or any(len(s) < 2 for s in samples.values()):
        raise ConfigError("need at least 2 samples for every group size", where="fit")

    def unpack(x: dict[str, float]) -> tuple[dict[int, float], float, float]:
        return {p: x[f"launch{p}"] for p in samples}, x["alpha"], x["bandwidth"]

    def objective(x: dict[str, float]) -> float:
        launch, alpha, bw = unpack(x)
        total = 0.0
        for p, rows in samples.items():
            pred = [group_allreduce_seconds(r.nbytes, p, launch[p], alpha, bw) for r in rows]
            med, p90 = _abs_rel(pred, [r.seconds for r in rows])
            total += med + p90
        return total

    x0 = {**{f"launch{p}": 20e-6 for p in samples}, "alpha": 1e-6, "bandwidth": 300e9}
    bounds = {
        **{f"launch{p}": (0.0, 200e-6) for p in samples},
        "alpha": (0.0, 20e-6),
        "bandwidth": (1e9, 5e12),
    }
    steps = {
        **{f"launch{p}": ("add", 4e-6) for p in samples},
        "alpha": ("add", 0.5e-6),
        "bandwidth": ("scale", 0.5),
    }
    x, _ = pattern_search(objective, x0, bounds, steps, rounds=12)
    launch, alpha, bw = unpack(x)
    error = {}
    for p, rows in samples.items():
        med, p90 = _abs_rel(
            [group_allreduce_seconds(r.nbytes, p, launch[p], alpha, bw) for r in rows],
            [r.seconds for r in rows],
        )
        error[p] = {"n": len(rows), "median": med, "p90": p90}
    return GroupFit(launch, alpha, bw, error)


def fit_transfer_launch(
    samples: Sequence[Sample], alpha_s: float, bandwidth: float
) -> tuple[float, dict[str, float]]:
    """The launch of a point-to-point transfer (``send_recv``) on a fabric whose transfers cost
    ``alpha + n / bandwidth``: minimises (median + p90) |relative error|; returns it and the error."""
    from sim.calibration.search import pattern_search

    def pred(launch: float) -> list[float]:
        return [launch + alpha_s + s.nbytes / bandwidth for s in samples]

    def objective(x: dict[str, float]) -> float:
        med, p90 = _abs_rel(pred(x["launch"]), [s.seconds for s in samples])
        return med + p90

    x, _ = pattern_search(
        objective, {"launch": 5e-6}, {"launch": (0.0, 200e-6)}, {"launch": ("add", 2e-6)}, 12
    )
    med, p90 = _abs_rel(pred(x["launch"]), [s.seconds for s in samples])
    return x["launch"], {"n": len(samples), "median": med, "p90": p90}
