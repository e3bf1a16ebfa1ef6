"""Drive one High Bandwidth Flash stack directly, without a system: sequential reads with a fixed
number in flight, compared with the stack's analytic twin.

By Little's law a stack reaches its peak bandwidth B only with B x latency bytes in flight: with
hbf-gen1's 1.64 TB/s and ~10 us reads that is ~17 MB, so 4 reads of 64 KiB in flight reach a
small fraction of the peak and 512 reach most of it.

    python examples/hbf_device.py
"""

from __future__ import annotations

from typing import Any

from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S, format_bandwidth
from sim.memory.device import MemRequest
from sim.memory.factory import resolve_device


def stream(in_flight: int, request_bytes: int = 64 * 1024, requests: int = 2048) -> dict[str, Any]:
    """Read ``requests`` consecutive ``request_bytes`` blocks keeping ``in_flight`` outstanding."""
    spec = resolve_device("hbf-gen1", fidelity="transaction")
    sim = Simulation(seed=0)
    device = spec.build(sim, "hbf")
    env = sim.env
    latencies: list[int] = []

    def reader(first: int):
        for i in range(first, requests, in_flight):
            req = MemRequest(i * request_bytes, request_bytes)
            yield device.access(req)
            latencies.append(req.latency_ps)

    done = env.all_of([env.process(reader(k)) for k in range(in_flight)])
    sim.run(until=done)
    achieved = requests * request_bytes * PS_PER_S / sim.now
    peak = device.peak_bandwidth_Bps()
    return {
        "in_flight": in_flight,
        "achieved_Bps": achieved,
        "fraction_of_peak": achieved / peak,
        "mean_latency_us": sum(latencies) / len(latencies) / 1e6,
        "unloaded_latency_us": device.unloaded_latency_ps(request_bytes) / 1e6,
        "peak_Bps": peak,
        "events": sim.env.events_processed,
    }


def main() -> list[dict[str, Any]]:
    rows = [stream(n) for n in (4, 64, 512)]
    for r in rows:
        print(
            f"{r['in_flight']:4} in flight: {format_bandwidth(r['achieved_Bps']):>12} "
            f"({100 * r['fraction_of_peak']:5.1f}% of the twin's {format_bandwidth(r['peak_Bps'])}), "
            f"latency {r['mean_latency_us']:.2f} us (unloaded {r['unloaded_latency_us']:.2f} us)"
        )
    return rows


if __name__ == "__main__":
    main()
