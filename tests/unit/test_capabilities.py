"""What each side of a comparison had, read from the resolved parameters (not preset names)."""

from sim.system.capabilities import capabilities, capabilities_text
from sim.system.spec import load_system


def test_prefetch_buffer_is_listed_where_a_memory_has_one():
    hbf = capabilities(load_system("hbf-hybrid"))
    assert "weight-prefetch buffer 32MiB/stack in its base-die SRAM" in hbf["memory hbf"]
    assert "no prefetch buffer" in hbf["memory hbm"]
    hbm = load_system(
        "gpu-hbm", {"chip.memory.hbm.prefetch.window": "8MiB", "chip.memory.hbm.prefetch.buffer": "die"}
    )
    assert "weight-prefetch buffer 8MiB/stack in compute-die SRAM" in capabilities(hbm)["memory hbm"]


def test_every_memory_states_its_peak_and_what_it_holds():
    spec = load_system("hbf-hybrid")
    caps = capabilities(spec)
    assert "4.915TB/s peak (no derating)" in caps["memory hbf"]
    assert "holds the weights" in caps["memory hbf"] and "holds the KV cache" in caps["memory hbm"]
    moved = capabilities(spec, {"weights": "hbm"})
    assert "holds the weights" in moved["memory hbm"] and "holds the weights" not in moved["memory hbf"]


def test_near_memory_units_say_whether_the_run_uses_them():
    spec = load_system("pnm-3d")
    assert "(used)" in capabilities(spec)["memory dram"]
    assert "(unused)" in capabilities(spec, {"compute": "die"})["memory dram"]
    pim = load_system(
        "pnm-3d",
        {
            "chip.memory.dram.near_memory.placement": "in",
            "chip.memory.dram.near_memory.shard_limit": "64MiB",
            "chip.memory.dram.near_memory.local_bandwidth": "13107.2GB/s",
        },
    )
    assert "in-memory MACs" in capabilities(pim)["memory dram"]
    assert "own path 13.11TB/s" in capabilities(pim)["memory dram"]


def test_software_and_kernel_model_are_stated():
    gpu = capabilities(load_system("gpu-hbm"))
    assert gpu["software"].startswith("host 2ms + 40us/request")
    assert "GEMM fixed cost 5.781us" in gpu["compute die"]
    bare = capabilities(load_system("gpu-hbm", {"software": "none"}))
    assert bare["software"] == "none (hardware-only figures)"
    text = capabilities_text(load_system("gpu-hbm"))
    assert text.count("\n- ") == len(gpu) - 1
