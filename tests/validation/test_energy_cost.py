"""Energy, TCO and CO2e: the arithmetic, and energies that follow from the work done."""

import pytest

from sim.core.errors import ConfigError
from sim.experiments.run import RunSpec, execute
from sim.model.spec import load_model
from sim.observe.cost import SECONDS_PER_YEAR, CostParams, cost_summary, replica_capital
from sim.serving.mapping import mapping_from
from sim.system.spec import SystemSpec, system_from_mapping


def system(cost=None, static="0W"):
    return system_from_mapping(
        {
            "system": {"name": "e", "chips": 2},
            "chip": {
                "compute": {"static_power": "50W", "energy_per_flop_bf16": "0.5pJ"},
                "memory": {"hbm": {"preset": "hbm3", "stacks": 2, "static_power": static}},
            },
            "fabric": {"topology": {"kind": "fully_connected", "k": 2}, "energy_per_bit": "5pJ"},
            "mapping": {"tp": 2},
            "cost": cost or {},
        }
    )


def test_tco_and_co2e_arithmetic():
    c = CostParams(
        chip_usd=1000,
        dram_usd_per_gb=10,
        amortization_years=1,
        pue=1.5,
        usd_per_kwh=0.1,
        grid_g_per_kwh=400,
        embodied_kg_per_chip=100,
        embodied_kg_per_gb_dram=1,
    )
    sys_ = system()
    gb = sys_.memories["hbm"].capacity_bytes() / 1e9  # 2 stacks of 16 GiB = 34.36 GB
    usd, kg = replica_capital(sys_, 2, c)
    assert usd == pytest.approx(2 * (1000 + 10 * gb))
    assert kg == pytest.approx(2 * (100 + gb))
    out = cost_summary(sys_, 2, energy_j=3.6e6, sim_s=3600.0, tokens=1_000_000, c=c)
    kwh = 1.0 * 1.5  # 3.6 MJ = 1 kWh, times PUE
    expected_usd = usd / SECONDS_PER_YEAR * 3600 + kwh * 0.1
    expected_g = kwh * 400 + kg * 1000 / SECONDS_PER_YEAR * 3600
    assert out["tco_usd_per_million_tokens"] == pytest.approx(expected_usd)
    assert out["co2e_g_per_million_tokens"] == pytest.approx(expected_g)
    assert out["tokens_per_s_per_w"] == pytest.approx((1e6 / 3600) / 1000.0)
    assert out["tokens_per_s_per_usd"] == pytest.approx((1e6 / 3600) / usd)


def test_run_energies_follow_from_the_work():
    s = system(static="2W")
    model = load_model("llama-3.1-8b")
    r, drv, _ = execute(RunSpec(model, s, mapping_from(s), None, batch=2, context=256, steps=3))
    parts = r["energy_by_component_j"]
    assert sum(parts.values()) == pytest.approx(r["energy_j"])
    t = r["sim_time_s"]
    die = drv.chips[0].die
    # die: tp chips x (FLOPs x 0.5 pJ + 50 W x time)
    assert parts["compute_die"] == pytest.approx(2 * (die.stat.flops.value * 0.5e-12 + 50 * t))
    # memory: at least the static 2 W x 2 stacks x 2 chips, plus per-bit read energy of what moved
    dev = drv.chips[0].memories["hbm"].device
    moved_bits = (dev.stat.bytes_read.value + dev.stat.bytes_written.value) * 8 * 2  # 2 stacks
    per_bit = dev.params.read_energy_per_bit + dev.params.tsv_energy_per_bit
    assert parts["memory.hbm"] >= 2 * (
        2 * 2 * t + moved_bits * min(per_bit, dev.params.write_energy_per_bit) * 1e-12
    )
    # fabric: bytes x traversals x 5 pJ/bit
    assert parts["fabric"] == pytest.approx(drv.stat.fabric_link_bytes.value * 8 * 5e-12)
    assert r["energy_j_per_token"] == pytest.approx(r["energy_j"] / r["tokens"])
    assert r["avg_power_w"] == pytest.approx(r["energy_j"] / t)


def test_cost_table_is_validated():
    from sim.core.errors import ConfigError
    from sim.observe.cost import cost_params

    with pytest.raises(ConfigError, match=r"cost\.pue"):
        cost_params(system({"pue": 0.5}))
    with pytest.raises(ConfigError, match="unknown parameter 'price'"):
        cost_params(system({"price": 3}))


def test_a_new_memory_class_is_priced_from_the_cost_table_or_its_kind():
    """A kind with its own price class needs no edit of the cost model: a [cost] coefficient for the
    class, else the kind's own default; neither gives a clear error."""
    from sim.memory.dram3d import Dram3D
    from sim.observe.cost import memory_prices, replica_capital
    from sim.system.spec import MemorySpec

    class Mram(Dram3D):
        price_class = "mram"
        carbon_class = "mram"

    base = system({})
    mem = MemorySpec("m", Mram, Dram3D.Params(), 1, None, None)
    sys_ = SystemSpec(**{**base.__dict__, "memories": {"m": mem}})
    gb = mem.capacity_bytes() / 1e9
    c = CostParams()
    with pytest.raises(ConfigError, match="mram_usd_per_gb"):
        replica_capital(sys_, 1, c)
    priced = SystemSpec(**{**sys_.__dict__, "cost": {"mram_usd_per_gb": 4.0, "embodied_kg_per_gb_mram": 0.1}})
    usd, kg = replica_capital(priced, 1, c, memory_prices(priced))
    assert usd == pytest.approx(c.chip_usd + 4.0 * gb) and kg == pytest.approx(
        c.embodied_kg_per_chip + 0.1 * gb
    )
    Mram.usd_per_gb, Mram.embodied_kg_per_gb = 2.0, 0.2
    usd, kg = replica_capital(sys_, 1, c)
    assert usd == pytest.approx(c.chip_usd + 2.0 * gb) and kg == pytest.approx(
        c.embodied_kg_per_chip + 0.2 * gb
    )
