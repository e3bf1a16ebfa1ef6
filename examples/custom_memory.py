"""Add a memory technology from a script: a new kind, its preset, and a system that uses it.

``mram3d`` is a stacked STT-MRAM modelled as a 3D DRAM without refresh and with slow writes: a
subclass of the ``dram3d`` kind registered under its own name, with its own preset and its own name
for queueing in the blame chain. Every number in the preset is an illustrative ASSUMPTION, not a
datasheet figure. The cost model charges it as DRAM (its ``price_class``). An out-of-tree package
does the same in its own module and lists that module under the ``memwall.plugins`` entry point;
``memwall run`` then finds it by name.

    python examples/custom_memory.py
"""

from __future__ import annotations

from typing import Any

import sim.api as memwall
from sim.core.preset import Preset, register_preset
from sim.memory.dram3d import Dram3D


@memwall.register("memory", "mram3d")
class Mram3D(Dram3D):
    """Stacked STT-MRAM: non-volatile (no refresh), DRAM-like reads, slow and costly writes."""

    price_class = "dram"  # ASSUMPTION: priced per GB like stacked DRAM
    carbon_class = "dram"

    def queueing_cause(self) -> str:
        return "memory queueing" if self.params.fidelity == "analytic" else "write pulse / bank busy"


register_preset(
    Preset(
        name="mram3d-stack",
        kind="mram3d",
        description="illustrative 16 GiB STT-MRAM stack on an HBM3-like interface (ASSUMPTIONS)",
        values={
            "channels": (16, "ASSUMPTION: HBM3-like 16 channels"),
            "tsv_rate": ("6.4Gb/s", "ASSUMPTION: HBM3's top pin rate"),
            "refresh_mode": ("off", "MRAM is non-volatile: no refresh"),
            "tWR": ("40ns", "ASSUMPTION: a ~30 ns write pulse plus margin"),
            "write_energy_per_bit": ("6pJ", "ASSUMPTION: STT writes cost a few times a DRAM write"),
        },
    )
)


def main() -> dict[str, Any]:
    system = memwall.system_from_mapping(
        {
            "system": {"name": "mram-node", "chips": 1},
            "chip": {"compute": {}, "memory": {"mram": {"preset": "mram3d-stack", "stacks": 4}}},
            "fabric": {"topology": {"kind": "fully_connected", "k": 1}},
            "mapping": {"tp": 1},
        },
        where="examples/custom_memory.py",
    )
    result = memwall.run(system, "llama-3.1-8b", batch=4, context=1024, steps=2)
    s = result.summary
    mram = system.memories["mram"]
    print(
        f"{mram.kind} x {mram.stacks}: TPOT {s['tpot_ms']['mean']:.3f} ms, "
        f"{s['energy_j_per_token']:.3f} J/token, capital ${s['capital_usd']:,.0f}; "
        f"critical path {s['stall_breakdown']}"
    )
    return s


if __name__ == "__main__":
    main()
