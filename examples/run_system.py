"""Build a system from Python (no TOML file), run it, and read the results as a dict.

The system is the shipped gpu-hbm node described inline with two HBM3 stacks per chip; the run is
a fixed decode batch of Llama-3.1-8B. The same system is then run again with its weights read
through a prefetch buffer to show a hardware variant as a one-line change.

    python examples/run_system.py
"""

from __future__ import annotations

import json
from typing import Any

import sim.api as memwall


def small_node(prefetch: dict[str, Any] | None = None) -> memwall.SystemSpec:
    hbm: dict[str, Any] = {"preset": "hbm3", "stacks": 2}  # 32 GiB per chip
    if prefetch is not None:
        hbm["prefetch"] = prefetch
    return memwall.system_from_mapping(
        {
            "system": {"name": "two-stack-node", "chips": 2},
            "chip": {"compute": {"peak_bf16": "989TFLOPS"}, "memory": {"hbm": hbm}},
            "fabric": {"flit_bytes": "256B", "topology": {"kind": "fully_connected", "k": 2}},
            "mapping": {"tp": 2},
        },
        where="examples/run_system.py",
    )


def main() -> dict[str, Any]:
    plain = memwall.run(small_node(), "llama-3.1-8b", batch=8, context=2048, steps=4)
    buffered = memwall.run(
        small_node({"window": "8MiB", "buffer": "die"}), "llama-3.1-8b", batch=8, context=2048, steps=4
    )
    out = {
        "tpot_ms": plain.summary["tpot_ms"]["mean"],
        "tpot_ms_with_prefetch_buffer": buffered.summary["tpot_ms"]["mean"],
        "stall_breakdown": plain.summary["stall_breakdown"],
        "energy_j_per_token": plain.summary["energy_j_per_token"],
        "capacity": buffered.summary["capacity"],
    }
    print(json.dumps(out, indent=1, sort_keys=True))
    return out


if __name__ == "__main__":
    main()
