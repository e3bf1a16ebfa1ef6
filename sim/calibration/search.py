"""A deterministic derivative-free search for calibration fits (Hooke-Jeeves pattern search).

The calibration objectives (median plus 90th percentile of relative error, with timer-resolution
rules) are not smooth, so a coordinate search with step halving from fixed starting points is used:
the same data always gives the same parameters, which lets a test refit a preset and compare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def pattern_search(
    f: Callable[[dict[str, float]], float],
    x0: Mapping[str, float],
    bounds: Mapping[str, tuple[float, float]],
    steps: Mapping[str, tuple[str, float]],
    rounds: int = 8,
) -> tuple[dict[str, float], float]:
    """Minimise ``f`` from ``x0``; each parameter moves by ``("add", step)`` or ``("scale", factor)``
    within its ``bounds``; steps halve after each round without improvement. Returns (x, f(x))."""
    x, best = dict(x0), f(dict(x0))
    step = {k: v for k, (_, v) in steps.items()}
    for _ in range(rounds):
        improved = True
        while improved:
            improved = False
            for key in x:
                lo, hi = bounds[key]
                for sign in (1, -1):
                    trial = dict(x)
                    if steps[key][0] == "add":
                        trial[key] = min(hi, max(lo, x[key] + sign * step[key]))
                    else:
                        trial[key] = min(hi, max(lo, x[key] * (1 + sign * step[key])))
                    if trial[key] == x[key]:
                        continue
                    value = f(trial)
                    if value < best - 1e-12:
                        x, best, improved = trial, value, True
                        break
        step = {k: v / 2 for k, v in step.items()}
    return x, best
