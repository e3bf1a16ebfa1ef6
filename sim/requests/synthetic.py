"""Synthetic request streams: Poisson or gamma arrivals with fixed, uniform or lognormal lengths.

:func:`synthetic_requests` (registered as ``request_generator`` ``synthetic``) draws from its own
numpy streams: the same seed gives the same requests, and the first ``n`` requests do not depend on
how many are asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.core.errors import ConfigError
from sim.core.limits import MAX_REQUESTS, MAX_SIM_PS, MAX_TOKENS
from sim.core.params import Check, ParamSet, one_of, param
from sim.core.registry import register
from sim.core.units import COUNT, FREQUENCY, PS_PER_S, RATIO
from sim.requests.record import Request

MIN_RATE = PS_PER_S / MAX_SIM_PS
"""Slowest arrival rate (requests per second): one mean gap fits in MAX_SIM_PS (~53 days)."""

MAX_RATE = float(PS_PER_S)
"""Fastest arrival rate: one request per picosecond, memwall's time step (faster rounds gaps to 0)."""

MIN_CV, MAX_CV = 1e-3, 1e3
"""Coefficients of variation accepted: beyond them gamma shapes and lognormal sigmas lose meaning."""


def _within(low: float, high: float, what: str) -> Check:
    def check(v: float) -> str | None:
        if v <= 0:
            return "a value > 0"
        return None if math.isfinite(v) and low <= v <= high else f"{what} in [{low:g}, {high:g}]"

    return check


def _count_in(high: int, limit: str) -> Check:
    def check(v: int) -> str | None:
        if v <= 0:
            return "a value > 0"
        return None if v <= high else f"a whole number <= {high:,} ({limit})"

    return check


_rate = _within(MIN_RATE, MAX_RATE, "a finite rate in requests per second")
_cv = _within(MIN_CV, MAX_CV, "a coefficient of variation")
_tokens = _count_in(MAX_TOKENS, "MAX_TOKENS")


@dataclass(frozen=True)
class ArrivalParams(ParamSet):
    """An arrival process: Poisson, or gamma-distributed inter-arrival times with a chosen CV."""

    rate: float = param(1.0, FREQUENCY, "mean arrival rate in requests per second ('2Hz' or 2)", check=_rate)
    arrival: str = param("poisson", str, "inter-arrival distribution", check=one_of("poisson", "gamma"))
    cv: float = param(1.0, RATIO, "coefficient of variation of inter-arrival times (gamma)", check=_cv)


_CHUNK = 1024  # draws per numpy call; fixed so that a seed's first n requests never depend on count


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, bool) or not isinstance(rng, int | np.integer) or rng < 0:
        raise ConfigError(f"expected a numpy Generator or an integer seed >= 0, found {rng!r}", where="rng")
    return np.random.default_rng(int(rng))


def arrival_times(params: ArrivalParams, rng: np.random.Generator, *, where: str = "rate") -> Iterator[int]:
    """Endless arrival times in ps: 0, then cumulative inter-arrival gaps of mean 1/rate.

    Poisson gaps are exponential (CV 1); gamma gaps have shape 1/cv^2 and scale cv^2/rate. Each gap
    is rounded to whole picoseconds, so times are exact integers and never decrease. A time beyond
    MAX_SIM_PS is an error naming ``where`` (a rate too low for the number of requests).
    """
    mean_s = 1.0 / params.rate
    now = 0
    while True:
        if params.arrival == "poisson":
            gaps = rng.exponential(mean_s, _CHUNK)
        else:
            shape = 1.0 / params.cv**2
            gaps = rng.gamma(shape, mean_s / shape, _CHUNK)
        scaled = np.rint(gaps * PS_PER_S)
        if not np.all(scaled <= MAX_SIM_PS):  # also NaN; checked before the cast to int64 could wrap
            raise _too_late(where)
        for gap_ps in scaled.astype(np.int64).tolist():
            if now > MAX_SIM_PS:
                raise _too_late(where)
            yield now
            now += gap_ps


def _too_late(where: str) -> ConfigError:
    return ConfigError(
        f"expected arrival times within {MAX_SIM_PS:,} ps (MAX_SIM_PS, ~53 days), found later ones; "
        "raise the rate or ask for fewer requests",
        where=where,
    )


_DISTS = ("fixed", "uniform", "lognormal")


@dataclass(frozen=True)
class SyntheticParams(ParamSet):
    """Synthetic request stream: arrival process and prompt / output length distributions.

    Lengths: ``fixed`` is always ``*_tokens``; ``uniform`` is a whole number in ``[*_min, *_max]``;
    ``lognormal`` has mean ``*_tokens`` and coefficient of variation ``*_cv`` before rounding and
    clipping to ``[*_min, *_max]`` (so the realised mean is slightly lower for heavy tails).
    """

    count: int = param(1000, COUNT, "number of requests", check=_count_in(MAX_REQUESTS, "MAX_REQUESTS"))
    rate: float = param(1.0, FREQUENCY, "mean arrival rate in requests per second", check=_rate)
    arrival: str = param("poisson", str, "inter-arrival distribution", check=one_of("poisson", "gamma"))
    cv: float = param(1.0, RATIO, "coefficient of variation of inter-arrival times (gamma)", check=_cv)
    prompt_dist: str = param("lognormal", str, "prompt length distribution", check=one_of(*_DISTS))
    prompt_tokens: int = param(1024, COUNT, "prompt length (fixed) or mean (lognormal)", check=_tokens)
    prompt_cv: float = param(1.0, RATIO, "prompt length coefficient of variation (lognormal)", check=_cv)
    prompt_min: int = param(1, COUNT, "smallest prompt (uniform, lognormal clip)", check=_tokens)
    prompt_max: int = param(8192, COUNT, "largest prompt (uniform, lognormal clip)", check=_tokens)
    output_dist: str = param("lognormal", str, "output length distribution", check=one_of(*_DISTS))
    output_tokens: int = param(256, COUNT, "output length (fixed) or mean (lognormal)", check=_tokens)
    output_cv: float = param(1.0, RATIO, "output length coefficient of variation (lognormal)", check=_cv)
    output_min: int = param(1, COUNT, "smallest output (uniform, lognormal clip)", check=_tokens)
    output_max: int = param(2048, COUNT, "largest output (uniform, lognormal clip)", check=_tokens)

    def validate(self) -> None:
        for side in ("prompt", "output"):
            low, high = getattr(self, f"{side}_min"), getattr(self, f"{side}_max")
            if low > high:
                raise ConfigError(
                    f"expected {side}_min <= {side}_max = {high}, found {low}", where=f"{side}_min"
                )


def _lengths(dist: str, mean: int, cv: float, low: int, high: int, rng: np.random.Generator) -> Iterator[int]:
    sigma = math.sqrt(math.log1p(cv * cv))
    mu = math.log(mean) - sigma * sigma / 2.0
    while True:
        if dist == "fixed":
            draws = [mean] * _CHUNK
        elif dist == "uniform":
            draws = rng.integers(low, high + 1, _CHUNK).tolist()
        else:
            draws = np.clip(np.rint(rng.lognormal(mu, sigma, _CHUNK)), low, high).astype(np.int64).tolist()
        yield from draws


@register("request_generator", "synthetic")
def synthetic_requests(
    params: SyntheticParams | Mapping[str, Any] | None = None,
    rng: np.random.Generator | int = 0,
    *,
    limit: int | None = None,
) -> Iterator[Request]:
    """Poisson or gamma arrivals with fixed, uniform or lognormal prompt and output lengths.

    ``rng`` is a numpy Generator (e.g. ``sim.rng["workload.requests"]``) or an integer seed. The
    arrival times, prompt lengths and output lengths come from three independent child streams, so
    changing one distribution never changes the others' draws.
    """
    if params is None:
        params = SyntheticParams()
    elif not isinstance(params, SyntheticParams):
        params = SyntheticParams.from_mapping(params, where="synthetic")
    gen_arr, gen_prompt, gen_output = as_generator(rng).spawn(3)
    times = arrival_times(
        ArrivalParams(params.rate, params.arrival, params.cv), gen_arr, where="synthetic.rate"
    )
    p = params
    prompts = _lengths(p.prompt_dist, p.prompt_tokens, p.prompt_cv, p.prompt_min, p.prompt_max, gen_prompt)
    outputs = _lengths(p.output_dist, p.output_tokens, p.output_cv, p.output_min, p.output_max, gen_output)
    count = p.count if limit is None else min(p.count, limit)
    for rid in range(count):
        yield Request(rid, next(times), next(prompts), next(outputs))


synthetic_requests.Params = SyntheticParams  # type: ignore[attr-defined]  (for `memwall describe`)
