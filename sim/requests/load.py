"""Offered load: a trace's arrival rate scaled, and synthetic load from named workload profiles.

The sample traces are sparse (the Azure conversation trace offers ~5.5 requests/s to a whole
cluster), so on one replica no batching policy is stressed. Two ways to set the load:

* :func:`rate_scaled`: a trace's requests with every arrival time divided by ``factor`` (2: twice
  the rate, the same requests in the same order and the same burstiness);
* :func:`profile_requests`: a synthetic stream (:mod:`sim.requests.synthetic`) at a given rate,
  Poisson or bursty (gamma inter-arrival times with a CV above 1), with the prompt and output length
  distributions of a registered **load profile** (presets of kind ``load``, each value with its
  source: ``chat`` and ``code`` from the Azure 2023 traces, ``summarization`` from the arXiv
  summarization lengths, ``reasoning`` (long outputs) and ``rag`` (long inputs) as marked).

:func:`offered_load` measures what a run was offered, so results state it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from sim.core.errors import ConfigError
from sim.core.limits import MAX_SIM_PS
from sim.core.preset import Preset, get_preset, register_preset
from sim.core.units import PS_PER_S
from sim.requests.record import Request
from sim.requests.synthetic import SyntheticParams, synthetic_requests

AZURE_CONV = "Azure LLM inference trace 2023, conversation (../shared/data/traces, 19,366 requests)"
AZURE_CODE = "Azure LLM inference trace 2023, code (../shared/data/traces, 8,819 requests)"
ARXIV = "arXiv summarization lengths, Llama-2 tokenizer (vidur; ../shared/data/traces, 28,257 rows)"

for _preset in (
    Preset(
        "chat",
        "load",
        "conversation: the Azure 2023 conversation trace's length statistics",
        {
            "prompt_tokens": (1155, f"mean ContextTokens, {AZURE_CONV}"),
            "prompt_cv": (0.96, f"ContextTokens std / mean, {AZURE_CONV}"),
            "prompt_max": (14050, f"largest ContextTokens, {AZURE_CONV}"),
            "output_tokens": (211, f"mean GeneratedTokens, {AZURE_CONV}"),
            "output_cv": (0.77, f"GeneratedTokens std / mean, {AZURE_CONV}"),
            "output_max": (1000, f"largest GeneratedTokens, {AZURE_CONV}"),
        },
    ),
    Preset(
        "code",
        "load",
        "code completion: long prompts, short outputs (Azure 2023 code trace)",
        {
            "prompt_tokens": (2048, f"mean ContextTokens, {AZURE_CODE}"),
            "prompt_cv": (0.96, f"ContextTokens std / mean, {AZURE_CODE}"),
            "prompt_max": (7437, f"largest ContextTokens, {AZURE_CODE}"),
            "output_tokens": (28, f"mean GeneratedTokens, {AZURE_CODE}"),
            "output_cv": (2.15, f"GeneratedTokens std / mean, {AZURE_CODE}"),
            "output_max": (1899, f"largest GeneratedTokens, {AZURE_CODE}"),
        },
    ),
    Preset(
        "summarization",
        "load",
        "long-document summarization (arXiv): long inputs, medium outputs",
        {
            "prompt_tokens": (2588, f"mean num_prefill_tokens, {ARXIV}"),
            "prompt_cv": (0.37, f"num_prefill_tokens std / mean, {ARXIV}"),
            "prompt_max": (4054, f"largest num_prefill_tokens, {ARXIV}"),
            "output_tokens": (291, f"mean num_decode_tokens, {ARXIV}"),
            "output_cv": (1.82, f"num_decode_tokens std / mean, {ARXIV}"),
            "output_max": (4056, f"largest num_decode_tokens, {ARXIV}"),
        },
    ),
    Preset(
        "rag",
        "load",
        "retrieval-augmented generation: a question plus retrieved passages in, a short answer out",
        {
            "prompt_tokens": (8192, "ASSUMPTION: ~16 retrieved passages of ~500 tokens with the question"),
            "prompt_cv": (0.5, "ASSUMPTION"),
            "prompt_max": (32768, "ASSUMPTION: a 32k-token context window"),
            "output_tokens": (256, "ASSUMPTION: answers like the Azure conversation outputs (211)"),
            "output_cv": (0.8, "ASSUMPTION: as the Azure conversation outputs (0.77)"),
            "output_max": (2048, "ASSUMPTION"),
        },
    ),
    Preset(
        "reasoning",
        "load",
        "reasoning models: short prompts, thousands of generated (thinking) tokens",
        {
            "prompt_tokens": (512, "ASSUMPTION: a short problem statement"),
            "prompt_cv": (1.0, "ASSUMPTION"),
            "prompt_max": (8192, "ASSUMPTION"),
            "output_tokens": (4096, "ASSUMPTION: chains of thought of thousands of tokens"),
            "output_cv": (0.6, "ASSUMPTION"),
            "output_max": (32768, "ASSUMPTION: a 32k-token generation limit"),
        },
    ),
):
    register_preset(_preset)

PROFILES = ("chat", "code", "summarization", "rag", "reasoning")
RATE_SCALE_MIN, RATE_SCALE_MAX = 1e-6, 1e6  # beyond: arrivals past MAX_SIM_PS, or all at once


def profile_params(profile: str, rate: float, count: int, arrival_cv: float = 1.0) -> SyntheticParams:
    """The synthetic stream of ``count`` requests of load profile ``profile`` at ``rate`` requests/s:
    Poisson arrivals at ``arrival_cv`` 1, bursty gamma arrivals above 1 (CV of the gaps)."""
    if profile not in PROFILES:
        raise ConfigError(
            f"expected a load profile ({', '.join(PROFILES)}), found {profile!r}", where="--load"
        )
    preset = get_preset(profile)
    values: dict[str, Any] = {
        **preset.raw_values(),
        "count": count,
        "rate": rate,
        "arrival": "poisson" if arrival_cv == 1.0 else "gamma",
        "cv": arrival_cv,
        "prompt_min": 1,
        "output_min": 1,
    }
    try:
        return SyntheticParams.from_mapping(values, where="load")
    except ConfigError as exc:  # name the flag that set the value
        flags = {"load.rate": "--rate", "load.cv": "--arrival-cv", "load.count": "--limit"}
        flag = flags.get(exc.where or "")
        if flag is None:
            raise
        raise ConfigError(exc.message, where=flag) from None


def profile_requests(
    profile: str, rate: float, count: int, seed: int = 0, arrival_cv: float = 1.0
) -> Iterator[Request]:
    """``count`` requests of ``profile`` at ``rate`` requests/s (see :func:`profile_params`)."""
    return synthetic_requests(profile_params(profile, rate, count, arrival_cv), seed)


def rate_scaled(requests: Iterable[Request], factor: float) -> Iterator[Request]:
    """``requests`` offered ``factor`` times as fast: every arrival time divided by ``factor``
    (rounded to the picosecond; order and relative spacing kept)."""
    if not RATE_SCALE_MIN <= factor <= RATE_SCALE_MAX:
        raise ConfigError(
            f"expected a rate scale from {RATE_SCALE_MIN:g} to {RATE_SCALE_MAX:g}, found {factor!r}",
            where="--rate-scale",
        )
    for r in requests:
        arrival = round(r.arrival_ps / factor)
        if arrival > MAX_SIM_PS:
            raise ConfigError(
                f"request {r.id} would arrive at {arrival:,} ps, beyond MAX_SIM_PS ({MAX_SIM_PS:,}); "
                "use a larger rate scale or fewer requests",
                where="--rate-scale",
            )
        yield replace(r, arrival_ps=arrival)


def offered_load(arrivals_ps: Sequence[int]) -> dict[str, float]:
    """What a run was offered: requests, the span of their arrivals and the measured rate
    ((n - 1) / span, the rate estimate that does not count the first arrival's gap)."""
    n = len(arrivals_ps)
    span = (max(arrivals_ps) - min(arrivals_ps)) / PS_PER_S if n else 0.0
    return {"requests": n, "span_s": span, "rate_per_s": (n - 1) / span if span > 0 else 0.0}
