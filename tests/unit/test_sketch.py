"""The streaming sketch: bounded memory, every quantile within its stated relative error."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.stats.kinds import Tally
from sim.stats.sketch import EXACT_SAMPLES, RELATIVE_ERROR, LogSketch


@settings(max_examples=60, deadline=None)
@given(
    xs=st.lists(st.floats(1e-6, 1e9, allow_nan=False), min_size=1, max_size=400),
    q=st.sampled_from([0, 1, 50, 90, 99, 100]),
)
def test_quantile_within_relative_error_of_the_sample_at_that_rank(xs, q):
    sk = LogSketch()
    sk.extend(xs)
    exact = float(np.percentile(np.asarray(xs), q, method="lower"))
    assert abs(sk.quantile(q) - exact) <= RELATIVE_ERROR * exact * (1 + 1e-9)


def test_zeros_and_negatives_keep_their_order():
    sk = LogSketch()
    sk.extend([-5.0, 0.0, 0.0, 3.0])
    assert sk.quantile(0) < 0 and sk.quantile(40) == 0.0 and sk.quantile(100) > 0
    assert sk.count == 4


def test_tally_is_exact_then_bounded():
    t = Tally("latency")
    rng = np.random.default_rng(0)
    xs = rng.lognormal(3, 1, EXACT_SAMPLES + 10_000)
    for x in xs[: EXACT_SAMPLES - 1]:
        t.observe(float(x))
    assert t.sketch is None and t.percentile(50) == np.percentile(xs[: EXACT_SAMPLES - 1], 50)
    for x in xs[EXACT_SAMPLES - 1 :]:
        t.observe(float(x))
    assert t.sketch is not None and t.samples == []  # no per-sample storage any more
    assert len(t.sketch.positive) < 2_000  # bounded by the range of values, not their number
    for q in (50, 90, 99):
        exact = float(np.percentile(xs, q, method="lower"))
        assert abs(t.percentile(q) - exact) <= RELATIVE_ERROR * exact * 1.001
    assert t.n == len(xs) and abs(t.mean - xs.mean()) < 1e-9 * xs.mean()
