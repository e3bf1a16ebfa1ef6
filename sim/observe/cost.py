"""Energy, TCO and CO2e of a run: what the paper judges hardware by (perf per TCO, per watt, per CO2e).

Energy comes from the components (each counts its own dynamic energy by event, plus static power
over the run). Cost and carbon follow from a system's optional ``[cost]`` table::

    TCO   = capital / amortisation x run time  +  energy x PUE x price of electricity
    CO2e  = energy x PUE x grid intensity      +  embodied carbon / lifetime x run time

Capital and embodied carbon count the chips one replica uses (``tp x pp``) with their memories.
Every default below is a parameter with its source or marked ASSUMPTION.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.core.errors import ConfigError
from sim.core.params import ParamSet, non_negative, param, positive
from sim.core.units import RATIO
from sim.system.spec import SystemSpec

SECONDS_PER_YEAR = 365.25 * 86400
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class CostParams(ParamSet):
    """Cost and carbon coefficients (the ``[cost]`` table of a system file)."""

    chip_usd: float = param(
        25000.0,
        RATIO,
        "price of one chip without memory, USD (ASSUMPTION: widely "
        "reported H100 SXM street prices of $25-30k include HBM; we take $25k)",
        check=non_negative,
    )
    dram_usd_per_gb: float = param(
        15.0,
        RATIO,
        "HBM / stacked DRAM price, USD per GB (ASSUMPTION: trade press "
        "puts HBM3E at $10-20/GB; the paper: HBM $/GB rose 1.35x in 2023-25)",
        check=non_negative,
    )
    flash_usd_per_gb: float = param(
        1.5,
        RATIO,
        "HBF / NAND price, USD per GB (ASSUMPTION: SanDisk pitches HBF "
        "at HBM-like price for 8-16x the capacity, i.e. ~1/10 HBM's $/GB)",
        check=non_negative,
    )
    amortization_years: float = param(
        4.0,
        RATIO,
        "capital amortisation and device lifetime, years "
        "(ASSUMPTION: 4-6 year server depreciation schedules)",
        check=positive,
    )
    pue: float = param(
        1.2,
        RATIO,
        "power usage effectiveness (ASSUMPTION: hyperscale data centres report 1.1-1.2)",
        check=lambda v: None if v >= 1 else "a value >= 1",
    )
    usd_per_kwh: float = param(
        0.08,
        RATIO,
        "electricity price, USD per kWh (ASSUMPTION: US industrial average ~$0.08)",
        check=non_negative,
    )
    grid_g_per_kwh: float = param(
        370.0,
        RATIO,
        "grid carbon intensity, gCO2e per kWh (ASSUMPTION: US grid average ~0.37 kg/kWh)",
        check=non_negative,
    )
    embodied_kg_per_chip: float = param(
        150.0,
        RATIO,
        "embodied carbon of one chip and its package, kgCO2e "
        "(ASSUMPTION: order of magnitude of published accelerator LCAs)",
        check=non_negative,
    )
    embodied_kg_per_gb_dram: float = param(
        0.3,
        RATIO,
        "embodied carbon per GB of DRAM, kgCO2e (ASSUMPTION: order of magnitude)",
        check=non_negative,
    )
    embodied_kg_per_gb_flash: float = param(
        0.03,
        RATIO,
        "embodied carbon per GB of flash, kgCO2e (ASSUMPTION: ~10x below DRAM per GB)",
        check=non_negative,
    )

    def usd_per_gb(self, price_class: str, where: str) -> float:
        """USD per GB of a memory of ``price_class`` (``dram_usd_per_gb``, ``flash_usd_per_gb``)."""
        return self._per_gb(f"{price_class}_usd_per_gb", "price_class", price_class, where)

    def embodied_kg_per_gb(self, carbon_class: str, where: str) -> float:
        """kgCO2e per GB of a memory of ``carbon_class`` (``embodied_kg_per_gb_dram``, ...)."""
        return self._per_gb(f"embodied_kg_per_gb_{carbon_class}", "carbon_class", carbon_class, where)

    def _per_gb(self, key: str, trait: str, value: str, where: str) -> float:
        names = {n for n, _, _ in self.specs()}
        if not value or key not in names:
            known = sorted(n for n in names if "per_gb" in n)
            raise ConfigError(
                f"no cost coefficient {key!r} for a memory whose kind declares {trait} = {value!r}; "
                f"expected a class with one of: {', '.join(known)}",
                where=where,
            )
        return float(getattr(self, key))


def cost_params(system: SystemSpec, overrides: Mapping[str, Any] | None = None) -> CostParams:
    return CostParams.from_mapping({**system.cost, **(overrides or {})}, where="cost")


def replica_capital(system: SystemSpec, chips: int, c: CostParams) -> tuple[float, float]:
    """(USD, kgCO2e embodied) of ``chips`` chips with all their memories.

    Each memory is charged at the price and embodied-carbon class its kind declares
    (:attr:`~sim.memory.device.MemoryDevice.price_class`, ``carbon_class``).
    """
    usd, kg = c.chip_usd, c.embodied_kg_per_chip
    for mem in system.memories.values():
        gb = mem.capacity_bytes() / 1e9
        usd += gb * c.usd_per_gb(mem.cls.price_class, f"cost ({mem.name})")
        kg += gb * c.embodied_kg_per_gb(mem.cls.carbon_class, f"cost ({mem.name})")
    return usd * chips, kg * chips


def cost_summary(
    system: SystemSpec, chips: int, energy_j: float, sim_s: float, tokens: int, c: CostParams
) -> dict[str, float]:
    """TCO and CO2e per million tokens, and the paper's perf-per-X figures."""
    capex_usd, embodied_kg = replica_capital(system, chips, c)
    life_s = c.amortization_years * SECONDS_PER_YEAR
    kwh = energy_j / J_PER_KWH * c.pue
    usd = capex_usd / life_s * sim_s + kwh * c.usd_per_kwh
    grams = kwh * c.grid_g_per_kwh + embodied_kg * 1000 / life_s * sim_s
    per_m = 1e6 / tokens if tokens else 0.0
    avg_power = energy_j / sim_s if sim_s > 0 else 0.0
    tps = tokens / sim_s if sim_s > 0 else 0.0
    return {
        "capital_usd": capex_usd,
        "tco_usd_per_million_tokens": usd * per_m,
        "co2e_g_per_million_tokens": grams * per_m,
        "tokens_per_s_per_w": tps / avg_power if avg_power else 0.0,
        "tokens_per_s_per_usd": tps / capex_usd if capex_usd else 0.0,  # throughput per $ of capital
        "tokens_per_usd": tokens / usd if usd else 0.0,
        "tokens_per_kg_co2e": tokens / (grams / 1000) if grams else 0.0,
    }
