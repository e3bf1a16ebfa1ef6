"""Energy, TCO and CO2e of a run: what the paper judges hardware by (perf per TCO, per watt, per CO2e).

Energy comes from the components (each counts its own dynamic energy by event, plus static power
over the run). Cost and carbon follow from a system's optional ``[cost]`` table::

    TCO   = capital / amortisation x run time  +  energy x PUE x price of electricity
    CO2e  = energy x PUE x grid intensity      +  embodied carbon / lifetime x run time

Capital and embodied carbon count the chips one replica uses (``tp x pp``) with their memories.
Every default below is a parameter with its source or marked ASSUMPTION.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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


PRICE_KEY = re.compile(r"^([a-z][a-z0-9_]*)_usd_per_gb$")
CARBON_KEY = re.compile(r"^embodied_kg_per_gb_([a-z][a-z0-9_]*)$")


@dataclass(frozen=True)
class MemoryPrices:
    """USD and embodied kgCO2e per GB by memory class, for classes beyond the built-in coefficients:
    from ``[cost]`` keys ``<class>_usd_per_gb`` / ``embodied_kg_per_gb_<class>``, else from the
    memory kind's own ``usd_per_gb`` / ``embodied_kg_per_gb`` class attributes."""

    usd: Mapping[str, float] = field(default_factory=dict)
    kg: Mapping[str, float] = field(default_factory=dict)


def cost_params(system: SystemSpec, overrides: Mapping[str, Any] | None = None) -> CostParams:
    """The built-in coefficients of the system's ``[cost]`` table (per-class prices excluded)."""
    table, _ = _split_cost_table({**system.cost, **(overrides or {})})
    return CostParams.from_mapping(table, where="cost")


def memory_prices(system: SystemSpec, overrides: Mapping[str, Any] | None = None) -> MemoryPrices:
    """Per-class memory prices from the ``[cost]`` table (see :class:`MemoryPrices`)."""
    return _split_cost_table({**system.cost, **(overrides or {})})[1]


def _split_cost_table(table: Mapping[str, Any]) -> tuple[dict[str, Any], MemoryPrices]:
    known = {n for n, _, _ in CostParams.specs()}
    base: dict[str, Any] = {}
    usd: dict[str, float] = {}
    kg: dict[str, float] = {}
    for key, value in table.items():
        price, carbon = PRICE_KEY.match(key), CARBON_KEY.match(key)
        if key in known or not (price or carbon):
            base[key] = value  # unknown keys are refused by CostParams with the list of known ones
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ConfigError(f"expected a number >= 0, found {value!r}", where=f"cost.{key}")
        if price:
            usd[price.group(1)] = float(value)
        else:
            assert carbon is not None
            kg[carbon.group(1)] = float(value)
    return base, MemoryPrices(usd, kg)


def _per_gb(
    c: CostParams,
    prices: Mapping[str, float],
    key: str,
    cls: str,
    trait: str,
    default: float | None,
    where: str,
) -> float:
    if cls in prices:
        return prices[cls]
    if cls and hasattr(c, key.format(cls)):
        return float(getattr(c, key.format(cls)))
    if default is not None:
        return float(default)
    raise ConfigError(
        f"no cost coefficient for a memory whose kind declares {trait} = {cls!r}; set "
        f"[cost] {key.format(cls or 'CLASS')} = ..., or declare it on the memory kind",
        where=where,
    )


def replica_capital(
    system: SystemSpec, chips: int, c: CostParams, prices: MemoryPrices | None = None
) -> tuple[float, float]:
    """(USD, kgCO2e embodied) of ``chips`` chips with all their memories.

    Each memory is charged at the price and embodied-carbon class its kind declares
    (:attr:`~sim.memory.device.MemoryDevice.price_class`, ``carbon_class``): a ``[cost]`` coefficient
    for that class, else a built-in one (``dram``, ``flash``), else the kind's own default.
    """
    prices = prices or MemoryPrices()
    usd, kg = c.chip_usd, c.embodied_kg_per_chip
    for mem in system.memories.values():
        gb = mem.capacity_bytes() / 1e9
        where = f"cost ({mem.name})"
        kind = mem.cls
        usd += gb * _per_gb(
            c, prices.usd, "{}_usd_per_gb", kind.price_class, "price_class", kind.usd_per_gb, where
        )
        kg += gb * _per_gb(
            c,
            prices.kg,
            "embodied_kg_per_gb_{}",
            kind.carbon_class,
            "carbon_class",
            kind.embodied_kg_per_gb,
            where,
        )
    return usd * chips, kg * chips


def cost_summary(
    system: SystemSpec,
    chips: int,
    energy_j: float,
    sim_s: float,
    tokens: int,
    c: CostParams,
    prices: MemoryPrices | None = None,
    replicas: int = 1,
) -> dict[str, float]:
    """TCO and CO2e per million tokens, and the paper's perf-per-X figures; ``chips`` per replica,
    ``replicas`` of them (data parallelism: capital and embodied carbon scale with the replicas)."""
    capex_usd, embodied_kg = replica_capital(system, chips, c, prices)
    if replicas != 1:
        capex_usd, embodied_kg = capex_usd * replicas, embodied_kg * replicas
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
