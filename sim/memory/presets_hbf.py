"""Named HBF and NAND presets. Every number carries its source; chosen values say ASSUMPTION.

Citations refer to /work/shared/reference/paper-facts.md: "Table 3" is the paper's Table 3 (HBF
versus other memories, section 2.2), "HP" the SLC/MLC/TLC white-paper table of section 8.2.

Capacities are binary: a "256 Gb" NAND die holds 2**38 bits, so ``hbf-gen1`` is 16 x 32 GiB =
512 GiB (549.8e9 B), the paper's "512 GB" read as NAND vendors state it; ``nand-tlc`` is 4 TiB,
the binary reading of Table 3's 4,096 GB flash card.
"""

from __future__ import annotations

from sim.core.preset import Preset, register_preset

HBF_GEN1 = register_preset(
    Preset(
        name="hbf-gen1",
        kind="hbf",
        description=(
            "SanDisk / SK hynix High Bandwidth Flash Gen-1 stack: 16 core dies, 512 GiB, 1,024-bit "
            "interface, 1,638 GB/s read (paper Table 3)"
        ),
        values={
            "channels": (
                16,
                "ASSUMPTION: 16 channels as in HBM3's 1,024-bit interface (16 x 64 bit, paper-facts "
                "8.1); HBF keeps the HBM electrical interface (SanDisk, paper-facts 2.3)",
            ),
            "dies_per_channel": (
                1,
                "16 HBF core dies per stack (SanDisk Investor Day 2025, paper-facts 2.3) over 16 "
                "channels: one die per channel (ASSUMPTION on the wiring)",
            ),
            "planes_per_die": (
                64,
                "ASSUMPTION: chosen so that dies x planes x page / tR = 16 x 64 x 16 KiB / 10 us = "
                "1,678 GB/s >= Table 3's 1,638 GB/s, leaving the interface as the binding limit; "
                "same order as FlashAccel's 96 planes per die (paper-facts 2.4)",
            ),
            "blocks_per_plane": (
                128,
                "ASSUMPTION: chosen so that capacity = 16 dies x 32 GiB (256 Gb per die, paper-facts "
                "2.3) = 512 GiB: 64 planes x 128 blocks x 4 MiB = 32 GiB per die",
            ),
            "pages_per_block": (256, "ASSUMPTION: 4 MiB erase blocks of 16 KiB pages"),
            "page_size": (
                "16KiB",
                "paper text: HBF reads are page based with pages of '10s of KB' (paper-facts 2.1); "
                "ASSUMPTION 16 KiB, the usual 3D NAND page and the low end of that range",
            ),
            "sector_size": (
                "4KiB",
                "paper Table 3: 4,096 bytes per read; reads sense a whole 16 KiB page but move only "
                "the touched 4 KiB sectors",
            ),
            "tR": (
                "10us",
                "ASSUMPTION within the sources: Table 3 gives '1,000s of ns', Chipstrat ~1-10 us, "
                "HyperAccel 10-20 us, SK hynix H3 ~20 us access latency (paper-facts 2.2-2.4); 10 us "
                "is where the first three meet. Use tR=20us for the H3 figure",
            ),
            "tPROG": (
                "250us",
                "HP white paper SLC tPROG 200-300 us (paper-facts 8.2), midpoint; HBF cells are "
                "reportedly SLC (Chipstrat, unconfirmed, paper-facts 2.3)",
            ),
            "tBERS": ("2ms", "HP white paper SLC tBERS 1.5-2 ms (paper-facts 8.2), upper end"),
            "channel_rate": (
                "102.4GB/s",
                "ASSUMPTION: the interface rate split evenly over the 16 channels (1,638.4 / 16), so "
                "the buses never bind before the interface",
            ),
            "interface_rate": (
                "1638.4GB/s",
                "paper Table 3: 1,638 GB/s read per HBF stack; SanDisk Gen-1 1.6 TB/s on a 1,024-bit "
                "interface (paper-facts 2.3), i.e. 12.8 Gb/s per pin [DERIVED]",
            ),
            "base_latency": (
                "50ns",
                "ASSUMPTION: logic die and PHY, inside Table 3's 10-100 ns HBM latency since HBF keeps "
                "the HBM interface",
            ),
            "multiplane": (
                0,
                "0 = all planes sense at once: 'each die is split into many sub-arrays read in parallel' "
                "(SanDisk Investor Day, paper-facts 2.3)",
            ),
            "endurance": (100_000, "SK hynix H3: HBF write endurance about 100k cycles (paper-facts 2.4)"),
            "controller_sram": (
                "32MiB",
                "FlashAccel sizes a stack's base-die SRAM at >= 2 x peak bandwidth x read latency "
                "(paper-facts 2.4): 2 x 1,638.4 GB/s x 10 us = 32.8 MB [DERIVED]; ASSUMPTION 32 MiB "
                "(33.6 MB), just above it. It holds the weight-prefetch window",
            ),
            "read_energy_per_bit": (
                "4pJ",
                "ASSUMPTION: array share of the read energy budget; Table 3's <80 W at 1,638 GB/s "
                "bounds the whole stack at 80 / (1.638e12 x 8) = 6.1 pJ/bit [DERIVED], and 4 + 0.3 + "
                "1 = 5.3 pJ/bit stays under it (H3 says up to 4x HBM per bit, paper-facts 2.4)",
            ),
            "program_energy_per_bit": (
                "50pJ",
                "ASSUMPTION: order of magnitude only; no program energy in the sources",
            ),
            "erase_energy_per_block": (
                "50uJ",
                "ASSUMPTION: order of magnitude only; no erase energy in the sources",
            ),
            "channel_energy_per_bit": (
                "0.3pJ",
                "ASSUMPTION: short TSV bus inside the stack; part of the 6.1 pJ/bit Table 3 budget",
            ),
            "interface_energy_per_bit": (
                "1pJ",
                "ASSUMPTION: HBM-class PHY; part of the 6.1 pJ/bit Table 3 budget",
            ),
        },
    )
)

NAND_TLC = register_preset(
    Preset(
        name="nand-tlc",
        kind="hbf",
        description=(
            "Conventional 3D TLC NAND SSD (8 Toggle-DDR channels, 4 TiB, 4 GB/s host link): the "
            "paper's Table 3 'flash card' baseline, modelled with the same flash device"
        ),
        values={
            "channels": (8, "ASSUMPTION: 8 NAND channels, a common SSD controller width"),
            "dies_per_channel": (4, "ASSUMPTION: 4 dies per channel (32 dies of 1 Tb = 4 TiB)"),
            "planes_per_die": (4, "ASSUMPTION: 4-plane 3D TLC die"),
            "blocks_per_plane": (
                2048,
                "ASSUMPTION: chosen so that capacity = 4 TiB, Table 3's 4,096 GB flash card: "
                "8 x 4 x 4 planes x 2048 blocks x 16 MiB",
            ),
            "pages_per_block": (1024, "ASSUMPTION: 16 MiB blocks, typical of 3D TLC"),
            "page_size": ("16KiB", "ASSUMPTION: 16 KiB page, typical 3D TLC (brief: 4-16 KiB)"),
            "sector_size": ("4KiB", "paper Table 3: 4,096 bytes per read for the flash card"),
            "tR": (
                "50us",
                "3D TLC tR 50-100 us (paper-facts 8.2, modern 3D NAND), low end; HP gives ~75 us and "
                "Samsung's 7th gen ~40 us",
            ),
            "tPROG": ("1.1ms", "HP white paper TLC tPROG 0.9-1.35 ms (paper-facts 8.2), middle"),
            "tBERS": ("4.5ms", "HP white paper TLC tBERS about 4.5 ms (paper-facts 8.2)"),
            "channel_rate": (
                "2.4GB/s",
                "Toggle DDR 5.0: 2.4 Gb/s per pin on a byte-wide channel (Samsung 8th gen, paper-facts 8.2)",
            ),
            "interface_rate": ("4GB/s", "paper Table 3: 1 flash card (SSD) 4 GB/s read"),
            "base_latency": (
                "5us",
                "ASSUMPTION: NVMe command and controller overhead; total unloaded read (~66 us) stays "
                "in Table 3's '10,000s of ns' for the flash card",
            ),
            "multiplane": (0, "ASSUMPTION: 0 = all 4 planes read together (multi-plane read)"),
            "endurance": (3000, "HP white paper TLC 1k-3k P/E cycles (paper-facts 8.2), upper end"),
            "controller_sram": (
                "0B",
                "ASSUMPTION: none for prefetching; SSD and UFS controllers keep their SRAM / DRAM for "
                "FTL maps and write buffering, so a prefetch buffer sits on the host (buffer = 'die')",
            ),
            "read_energy_per_bit": ("5pJ", "ASSUMPTION: order of magnitude (no source)"),
            "program_energy_per_bit": ("200pJ", "ASSUMPTION: order of magnitude (no source)"),
            "erase_energy_per_block": ("500uJ", "ASSUMPTION: order of magnitude (no source)"),
            "channel_energy_per_bit": ("5pJ", "ASSUMPTION: Toggle DDR I/O, order of magnitude"),
            "interface_energy_per_bit": ("10pJ", "ASSUMPTION: PCIe/NVMe link, order of magnitude"),
        },
    )
)
