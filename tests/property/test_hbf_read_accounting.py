"""The analytic level's closed-form read accounting equals the page-by-page accounting."""

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.simulation import Simulation
from sim.memory.device import MemRequest
from sim.memory.factory import resolve_device

COUNTERS = ("pages_read", "channel_bytes", "interface_bytes", "array_energy_pj", "io_energy_pj", "energy_pj")


@settings(max_examples=60, deadline=None)
@given(
    addr=st.integers(0, 1 << 30),
    size=st.integers(1, 4 << 20),
    preset=st.sampled_from(["hbf-gen1", "nand-tlc"]),
)
def test_closed_form_read_counts_match_the_pieces(addr, size, preset):
    results = []
    for closed_form in (True, False):
        sim = Simulation()
        dev = resolve_device(preset, fidelity="analytic").build(sim)
        req = MemRequest(addr, size)
        if closed_form:
            dev._account_read(req)
        else:
            dev._prepare(req)
        results.append([getattr(dev.stat, c).value for c in COUNTERS])
    assert results[0][:3] == results[1][:3]
    for a, b in zip(results[0][3:], results[1][3:], strict=True):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(b))
