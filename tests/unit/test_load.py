"""Offered load (sim.requests.load): rate-scaled traces keep their requests and divide their arrival
times; synthetic load from a profile arrives at the asked rate within sampling error; results state
what was offered."""

import itertools
import math
import statistics

import pytest

from sim.core.errors import ConfigError
from sim.core.preset import get_preset
from sim.experiments.run import build_run, execute
from sim.requests.load import PROFILES, offered_load, profile_requests, rate_scaled
from sim.requests.readers import read_trace
from sim.shipped import shipped_dir

TRACE = shipped_dir("traces") / "azure_conv_200.csv"


def test_a_rate_scaled_trace_is_the_same_requests_arriving_k_times_as_fast():
    base = read_trace(TRACE, limit=50)
    for k in (0.5, 2.0, 3.7):
        scaled = list(rate_scaled(base, k))
        assert [(r.id, r.prompt_tokens, r.output_tokens) for r in scaled] == [
            (r.id, r.prompt_tokens, r.output_tokens) for r in base
        ]
        assert [r.arrival_ps for r in scaled] == [round(r.arrival_ps / k) for r in base]
        a, b = offered_load([r.arrival_ps for r in base]), offered_load([r.arrival_ps for r in scaled])
        assert b["rate_per_s"] == pytest.approx(k * a["rate_per_s"], rel=1e-9)


@pytest.mark.parametrize("cv", [1.0, 3.0])
def test_synthetic_load_arrives_at_its_rate_within_sampling_error(cv):
    n, rate = 4000, 5.0
    reqs = list(profile_requests("chat", rate, n, seed=7, arrival_cv=cv))
    measured = offered_load([r.arrival_ps for r in reqs])
    assert measured["requests"] == n
    # (n - 1) / span estimates the rate with relative standard error ~ cv / sqrt(n)
    assert measured["rate_per_s"] == pytest.approx(rate, rel=4 * cv / math.sqrt(n))
    gaps = [b.arrival_ps - a.arrival_ps for a, b in itertools.pairwise(reqs)]
    assert statistics.pstdev(gaps) / statistics.mean(gaps) == pytest.approx(cv, rel=0.25)


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_lengths_have_their_sourced_means(profile):
    preset = get_preset(profile).raw_values()
    reqs = list(profile_requests(profile, 1.0, 4000, seed=3))
    for side in ("prompt", "output"):
        values = [getattr(r, f"{side}_tokens") for r in reqs]
        assert max(values) <= preset[f"{side}_max"]
        # lognormal mean before clipping and rounding: within 4 standard errors (+ a small clip bias)
        mean = preset[f"{side}_tokens"]
        se = preset[f"{side}_cv"] * mean / math.sqrt(len(values))
        assert abs(statistics.mean(values) - mean) < 4 * se + 0.03 * mean
    assert all(source.strip() for source in get_preset(profile).sources().values())


def test_a_run_states_the_load_it_was_offered():
    spec, _ = build_run({"system": "default", "load": "chat", "rate": 2.0, "limit": 12, "set": {}})
    summary, _, _ = execute(spec)
    load = summary["offered_load"]
    assert (load["profile"], load["nominal_rate_per_s"], load["requests"]) == ("chat", 2.0, 12)
    assert summary["requests"] == 12
    spec, _ = build_run({"system": "default", "trace": str(TRACE), "limit": 12, "rate_scale": 3.0, "set": {}})
    scaled, _, _ = execute(spec)
    base = offered_load([r.arrival_ps for r in read_trace(TRACE, limit=12)])
    assert scaled["offered_load"]["rate_scale"] == 3.0
    assert scaled["offered_load"]["rate_per_s"] == pytest.approx(3 * base["rate_per_s"], rel=1e-9)


@pytest.mark.parametrize(
    "settings, where",
    [
        ({"load": "nope"}, "--load"),
        ({"load": "chat", "trace": str(TRACE)}, "--load"),
        ({"rate": 2.0}, "--rate"),
        ({"load": "chat", "rate_scale": 2.0}, "--rate-scale"),
        ({"batch": 2, "rate_scale": 2.0}, "--rate-scale"),
        ({"load": "chat", "rate": -1.0}, "--rate"),
        ({"load": "chat", "rate": 1e-30}, "--rate"),
        ({"load": "chat", "arrival_cv": 1e9}, "--arrival-cv"),
        ({"rate_scale": 1e-300}, "--rate-scale"),
        ({"rate_scale": 1e300}, "--rate-scale"),
    ],
)
def test_load_settings_that_cannot_apply_are_refused(settings, where):
    with pytest.raises(ConfigError) as err:
        spec, _ = build_run({"system": "default", **settings, "set": {}})
        list(spec.requests or ())
    assert err.value.where == where
