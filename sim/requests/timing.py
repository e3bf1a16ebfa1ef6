"""When a request's tokens came out: TTFT, TPOT and end-to-end latency, defined once.

* **TTFT** (time to first token): from the request's arrival to the end of the iteration that
  emitted its first output token (queueing and prefill included).
* **TPOT** (time per output token): the mean gap between its output tokens after the first,
  ``(last - first) / (generated - 1)``; undefined for a request that generated fewer than two.
* **end-to-end latency**: from arrival to the end of the iteration that emitted its last token.

Every part of memwall that reports these (the run summary, ``requests.csv``, the timeline, the
batching policies' request states) uses these functions. Times are integer picoseconds.
"""

from __future__ import annotations


def ttft_ps(arrival_ps: int, first_token_ps: int) -> int:
    return first_token_ps - arrival_ps


def tpot_ps(first_token_ps: int, last_token_ps: int, generated: int) -> float | None:
    """Mean time per output token after the first; None for fewer than two tokens."""
    if generated < 2:
        return None
    return (last_token_ps - first_token_ps) / (generated - 1)


def e2e_ps(arrival_ps: int, last_token_ps: int) -> int:
    return last_token_ps - arrival_ps


PS_PER_MS = 1e9


def ttft_ms(arrival_ps: int, first_token_ps: int) -> float:
    return ttft_ps(arrival_ps, first_token_ps) / PS_PER_MS


def tpot_ms(first_token_ps: int, last_token_ps: int, generated: int) -> float | None:
    """TPOT in milliseconds; None for fewer than two tokens."""
    if generated < 2:
        return None
    return (last_token_ps - first_token_ps) / PS_PER_MS / (generated - 1)


def e2e_ms(arrival_ps: int, last_token_ps: int) -> float:
    return e2e_ps(arrival_ps, last_token_ps) / PS_PER_MS
