"""Percentiles and the distribution summary every result in memwall reports (mean, p50, p90, p99).

One definition, so TTFT, TPOT, step times, memory latencies and packet latencies are comparable:
linear interpolation between closest ranks (numpy's default, the "type 7" estimator of Hyndman &
Fan, 1996).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

QUANTILES = (50, 90, 99)


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``; 0.0 when there are none."""
    if len(values) == 0:
        return 0.0
    return float(np.percentile(np.asarray(values), q, method="linear"))


def distribution(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{"mean", "p50", "p90", "p99"}`` of ``values``; all 0.0 when there are none."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        arr = np.zeros(1)
    out = {"mean": float(arr.mean())}
    out.update({f"p{q}": float(np.percentile(arr, q)) for q in QUANTILES})
    return out
