"""Fabric calibration helpers: alpha-beta fits recover known models, parameters round-trip, errors."""

from __future__ import annotations

import math

import pytest

from sim.calibration.fabric import (
    WEIGHTINGS,
    Sample,
    fabric_parameters,
    fit_ring_allreduce,
    fit_send_recv,
    implied_alpha_beta,
    local_median,
    read_vidur_csv,
    ring_allreduce_seconds,
    send_recv_seconds,
)
from sim.core.errors import ConfigError
from sim.fabric.router import RouterParams
from sim.system.spec import load_system

ALPHA, BETA = 2.5e-6, 1 / 300e9
SIZES = [2048 + 8192 * i for i in range(128)] + [1 << (20 + i % 7) for i in range(20)]


def samples(fn) -> list[Sample]:
    return [Sample(n, fn(n), fn(n), fn(n)) for n in sorted(SIZES)]


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_send_recv_fit_recovers_an_exact_model(weighting):
    fit = fit_send_recv(samples(lambda n: send_recv_seconds(n, ALPHA, BETA)), weighting)
    assert fit.alpha_s == pytest.approx(ALPHA, rel=1e-9)
    assert fit.beta_s_per_byte == pytest.approx(BETA, rel=1e-9)
    assert fit.bandwidth_Bps == pytest.approx(300e9, rel=1e-9)
    assert fit.max_rel_error < 1e-9 and fit.points == len(SIZES)


@pytest.mark.parametrize("ranks", [2, 4, 8])
def test_ring_fit_recovers_per_step_alpha_and_link_beta(ranks):
    data = samples(lambda n: ring_allreduce_seconds(n, ranks, ALPHA, BETA))
    fit = fit_ring_allreduce(data, ranks)
    assert (fit.alpha_s, fit.beta_s_per_byte) == (pytest.approx(ALPHA), pytest.approx(BETA))
    assert fit.predict(1 << 20) == pytest.approx(ring_allreduce_seconds(1 << 20, ranks, ALPHA, BETA))


def test_ring_closed_form():
    # 2(p-1) steps of alpha, each moving n/p bytes
    assert ring_allreduce_seconds(8000, 8, 1.0, 0.001) == pytest.approx(14 * 1.0 + 14 * 1000 * 0.001)


def test_octave_weighting_balances_dense_and_sparse_sizes():
    # 1 point per octave on the exact model, many noisy-high points in one octave: the octave fit
    # stays closer to the exact model than the plain relative fit
    exact = [Sample(1 << k, send_recv_seconds(1 << k, ALPHA, BETA), 0, 0) for k in range(11, 27)]
    dense = [
        Sample((1 << 20) + 64 * i, 1.3 * send_recv_seconds(1 << 20, ALPHA, BETA), 0, 0) for i in range(500)
    ]
    data = sorted(exact + dense, key=lambda s: s.nbytes)
    octave, relative = fit_send_recv(data, "octave"), fit_send_recv(data, "relative")
    assert abs(octave.beta_s_per_byte / BETA - 1) < abs(relative.beta_s_per_byte / BETA - 1)


def test_fabric_parameters_reproduce_the_fit():
    router = RouterParams()
    p = fabric_parameters(1.937e-6, 1 / 349e9, 1e9, router)
    assert p == {"flit_bytes": 349, "inject_latency": 967, "eject_latency": 966}
    assert p["inject_latency"] + router.pipeline + p["eject_latency"] == 1937
    # over hops, the routers and links come out of alpha first
    q = fabric_parameters(1e-6, 1 / 100e9, 1e9, router, hops=2, link_cycles=50)
    assert q["inject_latency"] + q["eject_latency"] + 3 * router.pipeline + 2 * 50 == 1000
    with pytest.raises(ConfigError, match="less than the routers"):
        fabric_parameters(5e-9, 1e-12, 1e9, router)


def test_implied_alpha_beta_of_gpu_hbm():
    alpha, beta = implied_alpha_beta(load_system("gpu-hbm"))
    assert alpha == pytest.approx(0.688e-6) and 1 / beta == pytest.approx(358e9)


def test_local_median():
    data = [Sample(n, float(n), 0, 0) for n in (100, 110, 120, 200)]
    assert local_median(data, 110, window=0.25) == (110.0, 3)
    with pytest.raises(ConfigError, match="no measured sizes"):
        local_median(data, 10_000)


def test_fit_rejects_too_little_or_unphysical_data():
    with pytest.raises(ConfigError):
        fit_send_recv([Sample(10, 1.0, 1.0, 1.0)])
    with pytest.raises(ConfigError, match="two different sizes"):
        fit_send_recv([Sample(10, 1.0, 1.0, 1.0), Sample(10, 2.0, 2.0, 2.0)])
    with pytest.raises(ConfigError, match="non-physical"):  # time falling with size
        fit_send_recv([Sample(10, 2.0, 2.0, 2.0), Sample(20, 1.0, 1.0, 1.0)], "absolute")
    with pytest.raises(ConfigError, match="weighting"):
        fit_send_recv(samples(lambda n: send_recv_seconds(n, ALPHA, BETA)), "log")
    with pytest.raises(ConfigError, match="ranks"):
        fit_ring_allreduce(samples(lambda n: 1.0 + n), 1)


HEADER = (
    ",time_stats.all_reduce.min,time_stats.all_reduce.max,time_stats.all_reduce.mean,"
    "time_stats.all_reduce.median,time_stats.all_reduce.std,rank,num_workers,size,collective,"
    "devices_per_node,max_devices_per_node\n"
)


def test_read_vidur_csv_selects_the_group_and_converts_ms(tmp_path):
    f = tmp_path / "ar.csv"
    f.write_text(
        HEADER
        + "0,0.01,0.03,0.02,0.02,0.0,0,8,4096,all_reduce,8,8\n"
        + "1,0.01,0.03,0.02,0.025,0.0,0,8,2048,all_reduce,8,8\n"
        + "2,0.5,0.5,0.5,0.5,0.0,0,4,2048,all_reduce,4,8\n"
    )
    rows = read_vidur_csv(f, num_workers=8, devices_per_node=8)
    assert [(s.nbytes, s.seconds) for s in rows] == [(2048, 2.5e-5), (4096, 2e-5)]
    assert math.isclose(rows[0].min_s, 1e-5) and math.isclose(rows[0].max_s, 3e-5)
    assert read_vidur_csv(f, num_workers=8, stat="max")[0].seconds == pytest.approx(3e-5)


def test_read_vidur_csv_errors_name_the_file(tmp_path):
    f = tmp_path / "ar.csv"
    f.write_text(HEADER + "0,0.01,0.03,0.02,zero,0.0,0,8,4096,all_reduce,8,8\n")
    with pytest.raises(ConfigError) as info:
        read_vidur_csv(f, num_workers=8)
    assert str(info.value).startswith(f"{f}: row 2") and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no rows with num_workers = 2"):
        read_vidur_csv(f, num_workers=2)
    with pytest.raises(ConfigError, match="file not found"):
        read_vidur_csv(tmp_path / "missing.csv", num_workers=8)
    with pytest.raises(ConfigError, match="stat"):
        read_vidur_csv(f, num_workers=8, stat="p99")
