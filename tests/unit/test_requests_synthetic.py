"""Synthetic requests: arrival statistics match the requested process; lengths; determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.core.errors import ConfigError
from sim.core.registry import lookup
from sim.core.rng import RandomStreams
from sim.core.units import PS_PER_S
from sim.requests.synthetic import SyntheticParams, synthetic_requests

N = 20_000


def gaps_s(reqs) -> np.ndarray:
    t = np.array([r.arrival_ps for r in reqs], dtype=np.float64) / PS_PER_S
    return np.diff(t)


def test_poisson_mean_gap_is_one_over_rate_within_ci():
    rate = 5.0
    reqs = list(synthetic_requests({"count": N, "rate": rate}, 11))
    assert reqs[0].arrival_ps == 0
    g = gaps_s(reqs)
    assert (g >= 0).all()
    # Exponential gaps: the mean of n has standard error (1/rate)/sqrt(n); allow 4 of them.
    assert abs(g.mean() - 1 / rate) < 4 * (1 / rate) / math.sqrt(len(g))
    assert g.std() / g.mean() == pytest.approx(1.0, abs=0.05)  # Poisson: CV 1


@pytest.mark.parametrize("cv", [0.25, 0.5, 2.0, 4.0])
def test_gamma_gaps_have_the_requested_cv_and_mean(cv):
    rate = 2.0
    g = gaps_s(synthetic_requests({"count": N, "rate": rate, "arrival": "gamma", "cv": cv}, 3))
    assert g.mean() == pytest.approx(1 / rate, rel=max(0.02, 5 * cv / math.sqrt(N)))
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.1)


def test_same_seed_same_requests_and_prefixes_do_not_depend_on_count():
    a = list(synthetic_requests({"count": 3000}, 5))
    assert list(synthetic_requests({"count": 3000}, 5)) == a
    assert list(synthetic_requests({"count": 100}, 5)) == a[:100]
    assert list(synthetic_requests({"count": 3000}, 5, limit=10)) == a[:10]
    assert list(synthetic_requests({"count": 3000}, 6)) != a
    # a Generator from the simulation's named streams works, and is reproducible from the master seed
    s1 = list(synthetic_requests({"count": 50}, RandomStreams(9)["workload.requests"]))
    s2 = list(synthetic_requests({"count": 50}, RandomStreams(9)["workload.requests"]))
    assert s1 == s2
    assert [r.id for r in a] == list(range(3000))


def test_changing_lengths_does_not_change_arrivals():
    a = list(synthetic_requests({"count": 500, "prompt_dist": "uniform"}, 1))
    b = list(synthetic_requests({"count": 500, "prompt_tokens": 77, "prompt_dist": "fixed"}, 1))
    assert [r.arrival_ps for r in a] == [r.arrival_ps for r in b]
    assert [r.output_tokens for r in a] == [r.output_tokens for r in b]


def test_length_distributions():
    fixed = list(synthetic_requests({"count": 100, "prompt_dist": "fixed", "prompt_tokens": 300}, 0))
    assert {r.prompt_tokens for r in fixed} == {300}
    uni = np.array(
        [
            r.output_tokens
            for r in synthetic_requests(
                {"count": N, "output_dist": "uniform", "output_min": 10, "output_max": 30}, 0
            )
        ]
    )
    assert uni.min() == 10 and uni.max() == 30
    assert uni.mean() == pytest.approx(20, abs=4 * math.sqrt((21**2 - 1) / 12 / N))
    logn = np.array(
        [
            r.prompt_tokens
            for r in synthetic_requests(
                {"count": N, "prompt_tokens": 1000, "prompt_cv": 0.5, "prompt_max": 10**6}, 0
            )
        ]
    )
    assert logn.mean() == pytest.approx(1000, rel=0.02)
    assert logn.std() / logn.mean() == pytest.approx(0.5, rel=0.05)
    clipped = [r.prompt_tokens for r in synthetic_requests({"count": 2000, "prompt_max": 2000}, 0)]
    assert min(clipped) >= 1 and max(clipped) == 2000
    assert all(isinstance(r.prompt_tokens, int) for r in fixed)


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"rate": 0}, "rate", "> 0"),
        ({"arrival": "weibull"}, "arrival", "'poisson', 'gamma'"),
        ({"prompt_min": 50, "prompt_max": 10}, "prompt_min", "prompt_min <= prompt_max"),
        ({"count": 0}, "count", "> 0"),
        ({"burst": 3}, "burst", "unknown parameter"),
    ],
)
def test_bad_params_name_their_key(data, key, expected):
    with pytest.raises(ConfigError) as info:
        list(synthetic_requests(data, 0))
    assert f"synthetic.{key}:" in str(info.value)
    assert expected in str(info.value)


def test_registered_and_rejects_bad_rng():
    assert lookup("request_generator", "synthetic") is synthetic_requests
    assert synthetic_requests.Params is SyntheticParams
    with pytest.raises(ConfigError, match="rng"):
        list(synthetic_requests(None, "seven"))  # type: ignore[arg-type]
