"""The serving software stack as a component: the host time an iteration spends outside the chips.

Between two forward passes an inference engine schedules the next batch, prepares its inputs,
samples and processes outputs; when its kernels are launched one by one (no CUDA graphs) each
launch also costs host time the device may wait for. None of that is hardware, and a hardware
study must be able to report with and without it, so it is its own component with its own
parameters, selected by the system file's ``[software]`` table (``preset = "vllm-v0-sync"``) or by
``--set software=none`` for the hardware-only figure. Its time is the blame cause
``software overhead``.

Per iteration the host adds ``iteration + per_sequence x requests in the batch``, hidden behind the
device's step up to ``overlap`` of it (an engine that schedules the next step while the device runs
the current one hides its host time), and ``kernel_gap`` per kernel launched without a graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.core.component import Component
from sim.core.params import ParamSet, non_negative, param
from sim.core.preset import Preset, preset_values, register_preset
from sim.core.units import RATIO, TIME
from sim.stats import counter


@dataclass(frozen=True)
class SoftwareParams(ParamSet):
    """Host-side costs of the serving engine (defaults: none, the hardware-only figure)."""

    iteration: int = param(
        0, TIME, "host time per iteration: schedule, prepare inputs, sample, outputs", check=non_negative
    )
    per_sequence: int = param(
        0, TIME, "host time per request in the batch, per iteration", check=non_negative
    )
    kernel_gap: int = param(
        0, TIME, "host launch time exposed per kernel (eager mode; 0 with CUDA graphs)", check=non_negative
    )
    overlap: float = param(
        0.0,
        RATIO,
        "fraction of the per-iteration host time hidden behind the previous step (asynchronous scheduling)",
        check=lambda v: None if 0 <= v <= 1 else "a fraction in [0, 1]",
    )


class SoftwareStack(Component):
    """The host of one replica: charges its time per iteration and per kernel launch."""

    Params = SoftwareParams
    STATS = (counter("host_ns", "ns", "host time on the critical path"),)

    def iteration_ps(self, requests: int, previous_step_ps: int) -> int:
        """Host time before an iteration of ``requests`` requests that the device waits for."""
        p: SoftwareParams = self.params  # type: ignore[assignment]
        host = p.iteration + p.per_sequence * requests
        hidden = min(host * p.overlap, previous_step_ps)
        return max(0, int(host - hidden))

    def kernels_ps(self, kernels: int) -> int:
        """Exposed launch time of ``kernels`` kernels launched one by one."""
        return kernels * self.params.kernel_gap  # type: ignore[attr-defined]

    def charge(self, ps: int) -> None:
        self.stat.host_ns.add(ps / 1000)


NONE = register_preset(
    Preset(
        name="none",
        kind="software",
        description="no software overhead: the hardware-only figure",
        values={
            "iteration": (0, "hardware only"),
            "per_sequence": (0, "hardware only"),
            "kernel_gap": (0, "hardware only"),
            "overlap": (0.0, "hardware only"),
        },
    )
)

_VLLM_BLOG = (
    "vLLM v0.6.0 performance update (blog.vllm.ai, 2024-09-05): with v0.5.3, Llama-3-8B on one H100 "
    "spent only 38% of its time on GPU execution, 29% scheduling and 33% in the API server"
)

VLLM_V0_SYNC = register_preset(
    Preset(
        name="vllm-v0-sync",
        kind="software",
        description="vLLM v0 engine, synchronous scheduling, CUDA graphs for decode (the profiles' stack)",
        values={
            "iteration": (
                "2ms",
                "ASSUMPTION, order of magnitude from " + _VLLM_BLOG + ": several ms of host time per "
                "step at tens of requests",
            ),
            "per_sequence": (
                "40us",
                "ASSUMPTION: scheduling, block tables, sampling and detokenisation grow with the batch ("
                + _VLLM_BLOG
                + "); ~6 ms at 100 requests",
            ),
            "kernel_gap": (
                "0ns",
                "decode runs as captured CUDA graphs (vLLM's default, enforce_eager=False)",
            ),
            "overlap": (0.0, "synchronous engine: the device waits for the host every step"),
        },
    )
)

VLLM_V06_ASYNC = register_preset(
    Preset(
        name="vllm-v0.6-async",
        kind="software",
        description="vLLM v0.6 multi-step scheduling with asynchronous output processing",
        values={
            "iteration": ("2ms", "as vllm-v0-sync (ASSUMPTION)"),
            "per_sequence": ("40us", "as vllm-v0-sync (ASSUMPTION)"),
            "kernel_gap": ("0ns", "CUDA graphs"),
            "overlap": (
                0.8,
                "ASSUMPTION: multi-step scheduling and asynchronous output processing hide most host time "
                "(the same blog reports 2.7x throughput and 5x lower TPOT than v0.5.3 for Llama-3-8B)",
            ),
        },
    )
)

EAGER = register_preset(
    Preset(
        name="vllm-v0-eager",
        kind="software",
        description="vllm-v0-sync without CUDA graphs (enforce_eager): every kernel launch costs host time",
        values={
            "iteration": ("2ms", "as vllm-v0-sync (ASSUMPTION)"),
            "per_sequence": ("40us", "as vllm-v0-sync (ASSUMPTION)"),
            "kernel_gap": (
                "4us",
                "ASSUMPTION: a CUDA kernel launch costs a few microseconds of host time, exposed when the "
                "device's kernels are shorter",
            ),
            "overlap": (0.0, "synchronous engine"),
        },
    )
)


def software_params(table: dict[str, Any], where: str) -> SoftwareParams:
    """A ``[software]`` table: a ``preset`` name with overrides (no table: ``none``)."""
    table = dict(table)
    name = table.pop("preset", "none" if not table else None)
    base = preset_values(name, "software", "a software stack", where) if name is not None else {}
    return SoftwareParams.from_mapping({**base, **table}, where=where)
