"""The gpu-hbm fabric against measured NCCL timings on a DGX-H100 (Vidur; tests/data/SOURCES.md).

Calibration: a ring all-reduce alpha-beta model, t = 2(p-1) alpha' + 2(p-1)/p n beta, is fitted to
the 8-GPU all_reduce medians (octave-weighted least squares, sim.calibration.fabric) and turned into
fabric parameters; gpu-hbm.toml must hold exactly those. The simulator then runs its ring
all-reduce on the gpu-hbm fabric (message level, as the system file says) at sizes from 2 KiB to
256 MiB and is compared with the measured local median at each size.

Tolerances, and why:

* latency-bound, <= 1 MiB: +-40%. The measured medians here are not a smooth curve: neighbouring
  sizes jump between ~19 us and ~39 us (NCCL switching protocols and algorithms), so the p10-p90
  spread inside one octave is itself about +-30% around its centre. A flat model cannot do better
  than that spread; 40% leaves room for it and still catches a wrong alpha (a 2x error fails).
* knee, 2-8 MiB: +-25%. NCCL stays flatter than alpha + n beta up to ~2 MiB (pipelining hides the
  first bytes), so the model runs 10-16% fast here.
* bandwidth-bound, >= 16 MiB: +-20%. The measured incremental bandwidth still rises with size
  (NCCL reaches ~465 GB/s between 32 and 64 MiB but ~360 GB/s between 16 and 32 MiB); one beta
  lands within 13% of every measured size.

Known limit (asserted as a property of the data, not hidden): one alpha cannot serve both a lone
point-to-point send (NCCL ~5-8 us) and one step of an 8-rank ring (~1.9 us). The fabric is
calibrated on the all-reduce, so simulated small send_recv is ~2.6-3.7x faster than measured;
large send_recv (bandwidth-bound) matches within 20%.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sim.calibration.fabric import (
    compare_allreduce,
    compare_send_recv,
    fabric_parameters,
    fit_ring_allreduce,
    fit_send_recv,
    format_comparison,
    implied_alpha_beta,
    read_vidur_csv,
    simulate_allreduce_seconds,
)
from sim.experiments.collective import run_collective
from sim.fabric.collectives import CollectiveCase
from sim.system.spec import load_system

DATA = Path(__file__).resolve().parents[1] / "data"
KiB, MiB = 1 << 10, 1 << 20


@pytest.fixture(scope="module")
def allreduce():
    return read_vidur_csv(DATA / "vidur_h100_dgx_all_reduce_8gpu.csv", num_workers=8, devices_per_node=8)


@pytest.fixture(scope="module")
def send_recv():
    return read_vidur_csv(DATA / "vidur_h100_dgx_send_recv_2gpu.csv", num_workers=2, devices_per_node=2)


@pytest.fixture(scope="module")
def system():
    return load_system("gpu-hbm")


def test_the_data_slices_are_complete(allreduce, send_recv):
    assert len(allreduce) == len(send_recv) == 994
    assert allreduce[0].nbytes == 2 * KiB and allreduce[-1].nbytes == 64 * MiB


def test_ring_fit_to_the_8gpu_allreduce(allreduce):
    fit = fit_ring_allreduce(allreduce, 8)
    assert fit.alpha_s == pytest.approx(1.937e-6, rel=0.005)
    assert fit.bandwidth_Bps == pytest.approx(349e9, rel=0.005)
    # 78% of NVLink4's 450 GB/s per direction (PF 5.2: NCCL busbw ~77% of NVLink on 4 x H100)
    assert 0.7 < fit.bandwidth_Bps / 450e9 < 0.85
    assert fit.rms_rel_error < 0.10 and fit.max_rel_error < 0.5


def test_gpu_hbm_fabric_is_the_calibration(allreduce, system):
    fit = fit_ring_allreduce(allreduce, 8)
    net = system.network
    assert net.clock == 1e9
    assert fabric_parameters(fit.alpha_s, fit.beta_s_per_byte, net.clock, system.router) == {
        "flit_bytes": net.flit_bytes,
        "inject_latency": net.inject_latency,
        "eject_latency": net.eject_latency,
    }
    alpha, beta = implied_alpha_beta(system)
    assert alpha == pytest.approx(fit.alpha_s, rel=1e-3) and beta == pytest.approx(
        fit.beta_s_per_byte, rel=2e-3
    )


SIZES = [2 * KiB] + [1 << k for k in range(13, 27)]  # the sizes with measurements near them


def tolerance(nbytes: int) -> float:
    if nbytes <= 1 * MiB:
        return 0.40
    if nbytes <= 8 * MiB:
        return 0.25
    return 0.20


def test_simulated_allreduce_matches_measured_nccl(allreduce, system):
    rows = compare_allreduce(system, allreduce, SIZES)
    table = format_comparison(rows)
    bad = [r for r in rows if abs(r.rel_error) > tolerance(r.nbytes)]
    assert not bad, "outside tolerance:\n" + table
    # and no systematic bias in the bandwidth-bound region
    big = [r.rel_error for r in rows if r.nbytes >= 16 * MiB]
    assert abs(sum(big) / len(big)) < 0.10, table


def test_simulation_is_exactly_the_fitted_ring_model(system):
    """Message level on one switch: 14 dependent steps of (alpha cycles + flits - 1)."""
    alpha, _ = implied_alpha_beta(system)
    fb = system.network.flit_bytes
    for n in (2 * KiB, 64 * KiB, 1 * MiB, 64 * MiB, 256 * MiB):
        flits = math.ceil(math.ceil(n / 8) / fb)
        expected = 14 * (round(alpha * 1e9) + flits - 1) * 1e-9
        assert simulate_allreduce_seconds(system, n) == pytest.approx(expected, rel=1e-9)


def test_shape_flat_then_linear(allreduce, system):
    sim = {n: simulate_allreduce_seconds(system, n) for n in (2 * KiB, 64 * KiB, 1 * MiB)}
    sim.update(
        {
            n: simulate_allreduce_seconds(system, n)
            for n in (16 * MiB, 32 * MiB, 64 * MiB, 128 * MiB, 256 * MiB)
        }
    )
    # latency-bound: 512x more bytes cost < 1.5x the time
    assert sim[1 * MiB] / sim[2 * KiB] < 1.5
    # bandwidth-bound: linear, a constant 2(p-1)/p x beta per extra byte, and doubling the bytes
    # nearly doubles the time once the ~27 us floor is small beside it
    _, beta = implied_alpha_beta(system)
    for n in (16 * MiB, 32 * MiB, 64 * MiB, 128 * MiB):
        assert (sim[2 * n] - sim[n]) / n == pytest.approx(14 / 8 * beta, rel=0.01)
        assert 1.7 < sim[2 * n] / sim[n] <= 2.0
    # the measurements have the same shape
    rows = {
        r.nbytes: r.measured_s
        for r in compare_allreduce(system, allreduce, [2 * KiB, 1 * MiB, 16 * MiB, 64 * MiB])
    }
    assert rows[1 * MiB] / rows[2 * KiB] < 1.5
    assert rows[64 * MiB] / rows[16 * MiB] > 2.5


@pytest.mark.parametrize("nbytes", [64 * KiB, 1 * MiB])
def test_flit_level_agrees_with_message_level(system, nbytes):
    """vc_buffer covers the calibrated NIC credit loop, so the flit level is not throttled by it."""
    case = CollectiveCase("allreduce", "ring", nbytes, tuple(range(8)))
    msg = run_collective(system.topology, case, system.network, system.router, fidelity="message")
    flit = run_collective(system.topology, case, system.network, system.router, fidelity="flit")
    assert flit["time_us"] == pytest.approx(msg["time_us"], rel=0.005)


def test_send_recv_bandwidth_region(send_recv, system):
    rows = compare_send_recv(system, send_recv, [16 * MiB, 32 * MiB, 64 * MiB])
    assert all(abs(r.rel_error) < 0.20 for r in rows), format_comparison(rows)


def test_point_to_point_and_ring_agree_on_beta_not_on_alpha(allreduce, send_recv):
    ring, p2p = fit_ring_allreduce(allreduce, 8), fit_send_recv(send_recv)
    # the same NVLink bandwidth shows through both
    assert p2p.bandwidth_Bps == pytest.approx(ring.bandwidth_Bps, rel=0.05)
    # but a lone NCCL send costs > 3x one ring step: the documented limit of a single alpha
    assert p2p.alpha_s > 3 * ring.alpha_s
