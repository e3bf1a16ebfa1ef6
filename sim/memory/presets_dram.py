"""Named 3D DRAM / HBM / LPDDR5X presets. Every number carries its source; chosen values say ASSUMPTION.

Sources, abbreviated below:

* **PF**: /work/shared/reference/paper-facts.md (section numbers given); "Table 3" is the paper's
  Table 3 (HBF versus other memories, PF 2.2).
* **DS3**: DRAMsim3, umd-memsys/DRAMsim3 ``configs/HBM2_8Gb_x128.ini`` (tCK = 1 ns, so its cycle
  counts are nanoseconds): CL 14, CWL 4, tRCD 14, tRP 14, tRAS 34, tRRD_S 4, tRRD_L 6, tWTR_S 6,
  tWTR_L 8, tFAW 30, tWR 16, tRTP_L 6, tREFI 3900, VDD 1.2 V, IDD0 65 mA, IDD3N 55 mA, IDD4R 390 mA,
  IDD4W 500 mA, IDD5AB 250 mA, tRFC 260, cmd_queue_size 32; bursts are BL4 on a 128-bit channel
  (64 B in 2 ns).
* **R2-HBM3**: Ramulator 2 HBM3 model (CMU-SAFARI/ramulator2 ``src/dram/impl/HBM3.cpp``) and its
  JESD238A-based fork (shenjiangqiu/llmsimulator_ramulator ``src/dram/impl/HBM3.cpp``, presets
  HBM3_5.2/8.0/9.6Gbps): per pseudo-channel 4 bank groups x 4 banks, 32 columns of 32 B (32 DQ x BL8),
  tCK = 1e6 / (rate / 4) ps, nCCDS 2, nCCDL 4, nRRDS 2, nRRDL 4, RD-to-WR gap of 2 nCK, tRFC table
  (ns) 16 Gb 450 / 24 Gb 610 / 32 Gb 650, nRFCSB = 200 ns. The fork states its ns values follow DS3;
  rounding DS3's ns up to tCK reproduces its cycle counts (e.g. 14 ns -> 23 nCK at 6.4 Gb/s).
* **R2-LP5**: Ramulator 2 LPDDR5 model (``src/dram/impl/LPDDR5.cpp``): org LPDDR5_32Gb_x16 (4 BG x
  4 banks, 2^17 rows, 2^10 columns of 16 bit = 2 KiB page); timing LPDDR5_6400 in nCK of 1.25 ns:
  nCL 20, nCWL 11, nRCD 15, nRPpb 15, nRAS 34, nWR 28, nRTP 4, nRRD 4, nWTRS 5, nWTRL 10, nFAW 16,
  nCCD 4; tREFI 3906 ns; tRFCab 280 ns and tRFCpb 140 ns for 16 Gb.
* **CR-IO**: "A 0.95pJ/b 5.12Gb/s/pin Charge-Recycling IOs with 47% Energy Reduction" (IEEE A-SSCC
  2022, ieeexplore 9980680), HBM TSV / interposer I/O: 0.95 pJ/b, i.e. ~1.79 pJ/b conventional.

Energy from DS3 currents (DRAMsim3's own power model): ACT+PRE = (IDD0 - IDD3N) VDD tRC
= 10 mA x 1.2 V x 48 ns = 576 pJ; read = (IDD4R - IDD3N) VDD x 2 ns / 512 bit = 1.57 pJ/bit; write
= (IDD4W - IDD3N) VDD x 2 ns / 512 bit = 2.09 pJ/bit; all-bank refresh = (IDD5AB - IDD3N) VDD tRFC
= 60.8 nJ per 128-bit HBM2 channel = 30.4 nJ per pseudo-channel.
"""

from __future__ import annotations

from typing import Any

from sim.core.preset import Preset, register_preset

Values = dict[str, tuple[Any, str]]

# HBM3-generation DRAM core timings (ns, rounded up to each preset's tCK by the device).
_HBM_CORE: Values = {
    "bank_groups": (4, "R2-HBM3: 4 bank groups per pseudo-channel"),
    "banks_per_group": (
        4,
        "R2-HBM3: 4 banks per bank group; ASSUMPTION: stack IDs (ranks) folded into rows",
    ),
    "row_bytes": ("1KiB", "R2-HBM3: 32 columns x 32 B = 1 KiB page per pseudo-channel"),
    "burst_bytes": (
        "32B",
        "JESD238: 32-bit pseudo-channel x BL8 = 32 B (R2-HBM3); Table 3: 32 bytes per read (HBM4)",
    ),
    "tCL": ("14ns", "DS3 CL 14 (R2-HBM3 fork: nCL 23 at 6.4 Gb/s = 14.4 ns)"),
    "tCWL": ("4ns", "DS3 CWL 4 (R2-HBM3 fork: nCWL 7 at 6.4 Gb/s)"),
    "tRCD": ("14ns", "DS3 tRCDRD 14"),
    "tRP": ("14ns", "DS3 tRP 14"),
    "tRAS": ("34ns", "DS3 tRAS 34"),
    "tRC": ("48ns", "DS3 tRAS + tRP = 48 (R2-HBM3 fork: nRC 77 at 6.4 Gb/s = 48.1 ns)"),
    "tRRD_S": ("4ns", "DS3 tRRD_S 4 (R2-HBM3 fork uses 2 nCK; the DS3 value is the conservative one)"),
    "tRRD_L": ("6ns", "DS3 tRRD_L 6"),
    "tFAW": ("30ns", "DS3 tFAW 30 (R2-HBM3 fork: nFAW 48 at 6.4 Gb/s = 30 ns)"),
    "tWR": ("16ns", "DS3 tWR 16"),
    "tWTR_S": ("6ns", "DS3 tWTR_S 6"),
    "tWTR_L": ("8ns", "DS3 tWTR_L 8"),
    "tRTP": ("6ns", "DS3 tRTP_L 6 (the same-bank value)"),
    "tREFI": ("3.9us", "DS3 tREFI 3900 (R2-HBM3 fork: nREFI 6240 at 6.4 Gb/s = 3.9 us)"),
    "tRFCsb": ("200ns", "R2-HBM3 fork: nRFCSB 320 nCK at 6.4 Gb/s = 200 ns"),
    "refresh_mode": (
        "per_bank",
        "JESD238 HBM3 per-bank refresh (REFsb in R2-HBM3); all-bank REF would cost tRFC/tREFI >= 9%",
    ),
    "refresh_postpone": (8, "JEDEC DDR/HBM: up to 8 refreshes may be postponed"),
    "page_policy": ("open", "ASSUMPTION: open page, the usual policy for streaming accelerators"),
    "address_mapping": (
        "RoBaCoBgPcCh",
        "ASSUMPTION: channel / pseudo-channel / bank-group interleaving for streaming weights",
    ),
    "queue_depth": (32, "DS3 cmd_queue_size 32"),
    "row_hit_cap": (16, "ASSUMPTION: FR-FCFS cap of 16 hits past an older conflicting request"),
}

_HBM_ENERGY: Values = {
    "act_energy": ("576pJ", "DS3 currents: (IDD0 - IDD3N) x VDD x tRC (module docstring)"),
    "read_energy_per_bit": ("1.57pJ", "DS3 currents: (IDD4R - IDD3N) x VDD per bit"),
    "write_energy_per_bit": ("2.09pJ", "DS3 currents: (IDD4W - IDD3N) x VDD per bit"),
    "tsv_energy_per_bit": ("1.79pJ", "CR-IO: conventional HBM TSV/IO = 0.95 pJ/b / (1 - 0.47)"),
    "refresh_energy": ("30.4nJ", "DS3 currents: (IDD5AB - IDD3N) x VDD x tRFC per pseudo-channel"),
}


def _merge(*parts: Values) -> Values:
    out: Values = {}
    for part in parts:
        out.update(part)
    return out


HBM3 = register_preset(
    Preset(
        name="hbm3",
        kind="dram3d",
        description="JEDEC HBM3 (JESD238) stack, 6.4 Gb/s: 16 channels x 64 bit, 819.2 GB/s, 16 GiB",
        values=_merge(
            _HBM_CORE,
            _HBM_ENERGY,
            {
                "channels": (16, "JESD238: 16 channels x 64 bit (PF 8.1)"),
                "pseudo_channels": (2, "JESD238: 2 pseudo-channels per channel (PF 8.1)"),
                "rows": (
                    32768,
                    "R2-HBM3 org HBM3_8Gb: 2^15 rows; gives 16 ch x 2 pc x 16 banks x 32768 x 1 KiB "
                    "= 16 GiB, an 8-high stack of 16 Gb layers (PF 8.1: 8-32 Gb layers, 4-64 GB)",
                ),
                "tsv_width_bits": (64, "JESD238: 64 data bits per channel, 1024 per stack (PF 8.1)"),
                "tsv_rate": ("6.4Gb/s", "JESD238: 6.4 Gb/s per pin, 819 GB/s per stack (PF 8.1)"),
                "tCK": ("0.625ns", "R2-HBM3 fork: tCK = 1e6 / (6400 / 4) ps = 625 ps"),
                "tCCD_S": ("1.25ns", "R2-HBM3 fork: nCCDS 2 nCK"),
                "tCCD_L": ("2.5ns", "R2-HBM3 fork: nCCDL 4 nCK"),
                "tRTW": ("1.25ns", "R2-HBM3: RD-to-WR = CL + BL + 2 - CWL, a 2 nCK bus gap"),
                "tRFC": ("450ns", "R2-HBM3 tRFC table, 16 Gb layers: 450 ns"),
            },
        ),
    )
)

HBM2E = register_preset(
    Preset(
        name="hbm2e",
        kind="dram3d",
        description="JEDEC HBM2E (JESD235C) stack, 3.2 Gb/s: 8 channels x 128 bit, 409.6 GB/s, 16 GiB",
        values=_merge(
            _HBM_CORE,
            _HBM_ENERGY,
            {
                "channels": (8, "JESD235: 8 channels x 128 bit per stack (1,024 data pins)"),
                "pseudo_channels": (2, "JESD235 pseudo-channel mode: 2 x 64 bit per channel"),
                "rows": (
                    65536,
                    "16 GiB 8-high HBM2E (16 Gb dies): 8 ch x 2 pc x 16 banks x 65536 rows x 1 KiB",
                ),
                "tsv_width_bits": (128, "JESD235: 128 data bits per channel"),
                "tsv_rate": ("3.2Gb/s", "JESD235C HBM2E: up to 3.2 Gb/s per pin = 409.6 GB/s per stack"),
                "tCK": ("0.625ns", "3.2 Gb/s DDR: 1.6 GHz clock"),
                "tCCD_S": ("1.25ns", "ASSUMPTION: 2 nCK, as HBM3 (R2-HBM3 fork)"),
                "tCCD_L": ("2.5ns", "ASSUMPTION: 4 nCK, as HBM3 (R2-HBM3 fork)"),
                "tRTW": ("1.25ns", "ASSUMPTION: 2 nCK read-to-write bus gap, as HBM3"),
                "tRFC": (
                    "350ns",
                    "ASSUMPTION: JEDEC 16 Gb DRAM tRFC1 (DDR4) for 16 Gb HBM2E dies "
                    "(DS3's 8 Gb HBM2 has 260 ns)",
                ),
            },
        ),
    )
)

HBM3E = register_preset(
    Preset(
        name="hbm3e",
        kind="dram3d",
        description="HBM3E stack, 9.6 Gb/s: 16 channels x 64 bit, 1228.8 GB/s, 24 GiB (8-high)",
        values=_merge(
            _HBM_CORE,
            _HBM_ENERGY,
            {
                "channels": (16, "HBM3E keeps HBM3's 1024-bit, 16-channel interface (PF 8.1)"),
                "pseudo_channels": (2, "HBM3E: 16 channels, 32 pseudo-channels (PF 8.1)"),
                "rows": (
                    49152,
                    "24 GB 8-high HBM3E (PF 8.1, 24-36 GB typical): 24 GiB / (512 banks x 1 KiB)",
                ),
                "tsv_width_bits": (64, "1024-bit interface / 16 channels (PF 8.1)"),
                "tsv_rate": (
                    "9.6Gb/s",
                    "PF 8.1: HBM3E ~9.2-9.8 Gb/s, ~1.15-1.2 TB/s; 9.6 Gb/s gives 1228.8 GB/s; "
                    "R2-HBM3 fork preset HBM3_9.6Gbps",
                ),
                "tCK": ("0.4166667ns", "R2-HBM3 fork: tCK = 1e6 / (9600 / 4) ps (417 ps whole)"),
                "tCCD_S": ("0.834ns", "R2-HBM3 fork HBM3_9.6Gbps: nCCDS 2 nCK"),
                "tCCD_L": ("1.668ns", "R2-HBM3 fork HBM3_9.6Gbps: nCCDL 4 nCK"),
                "tRTW": ("0.834ns", "R2-HBM3: 2 nCK RD-to-WR bus gap"),
                "tRFC": ("610ns", "R2-HBM3 fork tRFC table, 24 Gb layers: 610 ns"),
            },
        ),
    )
)

HBM4 = register_preset(
    Preset(
        name="hbm4",
        kind="dram3d",
        description=(
            "HBM4-6400 as the paper's Table 3 assumes: 2048-bit (32 channels x 64 bit) at 6.4 Gb/s = "
            "1638.4 GB/s, 48 GiB, 40 W"
        ),
        values=_merge(
            _HBM_CORE,
            _HBM_ENERGY,
            {
                "channels": (32, "JEDEC HBM4: 32 channels (PF 8.1); Table 3: 2048-bit interface"),
                "pseudo_channels": (2, "JEDEC HBM4: 2 pseudo-channels per channel (PF 8.1)"),
                "rows": (49152, "Table 3: 48 GB per stack = 48 GiB / (1024 banks x 1 KiB)"),
                "tsv_width_bits": (64, "2048 bits / 32 channels (Table 3, PF 2.2 derived)"),
                "tsv_rate": ("6.4Gb/s", "Table 3 HBM4-6400: 2048 x 6.4 Gb/s = 1638.4 GB/s (PF 2.2)"),
                "tCK": ("0.625ns", "ASSUMPTION: HBM3's 6.4 Gb/s command clock (R2-HBM3 fork)"),
                "tCCD_S": ("1.25ns", "ASSUMPTION: HBM3 value, 2 nCK (R2-HBM3 fork)"),
                "tCCD_L": ("2.5ns", "ASSUMPTION: HBM3 value, 4 nCK (R2-HBM3 fork)"),
                "tRTW": ("1.25ns", "ASSUMPTION: HBM3 value, 2 nCK (R2-HBM3)"),
                "tRFC": ("650ns", "R2-HBM3 fork tRFC table, 32 Gb layers (48 GB 12-high): 650 ns"),
                "tsv_energy_per_bit": (
                    "0.95pJ",
                    "CR-IO 0.95 pJ/b; ASSUMPTION: HBM4's logic-process base die reaches it. Check: "
                    "Table 3's 40 W at 1638.4 GB/s is 3.05 pJ/bit in all; this preset's streaming "
                    "read is 1.57 + 0.95 + 576/8192 = 2.59 pJ/bit before background power",
                ),
            },
        ),
    )
)

LPDDR5X = register_preset(
    Preset(
        name="lpddr5x",
        kind="dram3d",
        description="LPDDR5X-8533 mobile package: 4 x16 channels (64 bit), 68.3 GB/s, 16 GiB",
        values={
            "channels": (4, "ASSUMPTION: 4 x16 channels = the 64-bit package of Table 3's LPDDR5 row"),
            "pseudo_channels": (1, "LPDDR5X has no pseudo-channels (one x16 channel per die)"),
            "bank_groups": (4, "R2-LP5 LPDDR5_32Gb_x16: 4 bank groups (BG mode)"),
            "banks_per_group": (4, "R2-LP5 LPDDR5_32Gb_x16: 4 banks per group"),
            "rows": (131072, "R2-LP5 LPDDR5_32Gb_x16: 2^17 rows; 4 ch x 16 banks x 2^17 x 2 KiB = 16 GiB"),
            "row_bytes": ("2KiB", "R2-LP5: 2^10 columns x 16 bit = 2 KiB page"),
            "burst_bytes": ("32B", "R2-LP5: BL16 x 16 bit = 32 B per column command"),
            "tsv_width_bits": (16, "x16 channel (for LPDDR this is the package bus, not TSVs)"),
            "tsv_rate": (
                "8.533Gb/s",
                "JEDEC LPDDR5X-8533 top bin; Table 3's LPDDR5-6400 64-bit module gives 51 GB/s, "
                "the same package at 8533 MT/s gives 68.3 GB/s",
            ),
            "tCK": ("0.9375ns", "CK = 8533 / 8 MHz (WCK:CK 4:1, WCK DDR): 938 ps whole"),
            "tCL": ("25ns", "R2-LP5 nCL 20 x 1.25 ns; ASSUMPTION: 6400-bin ns kept at 8533"),
            "tCWL": ("13.75ns", "R2-LP5 nCWL 11 x 1.25 ns; ASSUMPTION as tCL"),
            "tRCD": ("18.75ns", "R2-LP5 nRCD 15 x 1.25 ns"),
            "tRP": ("18.75ns", "R2-LP5 nRPpb 15 x 1.25 ns"),
            "tRAS": ("42.5ns", "R2-LP5 nRAS 34 x 1.25 ns"),
            "tRC": ("0ns", "tRAS + tRPpb (R2-LP5's nRC 30 is below its nRAS, so not used)"),
            "tCCD_S": ("1.875ns", "ASSUMPTION: BG mode, BL16 = 2 nCK between bank groups"),
            "tCCD_L": ("3.75ns", "R2-LP5 nCCD 4 nCK, taken as the same-bank-group value"),
            "tRRD_S": ("5ns", "R2-LP5 nRRD 4 x 1.25 ns"),
            "tRRD_L": ("5ns", "R2-LP5 nRRD 4 x 1.25 ns (one value for LPDDR5)"),
            "tFAW": ("20ns", "R2-LP5 nFAW 16 x 1.25 ns"),
            "tWR": ("35ns", "R2-LP5 nWR 28 x 1.25 ns"),
            "tWTR_S": ("6.25ns", "R2-LP5 nWTRS 5 x 1.25 ns"),
            "tWTR_L": ("12.5ns", "R2-LP5 nWTRL 10 x 1.25 ns"),
            "tRTP": ("5ns", "R2-LP5 nRTP 4 x 1.25 ns"),
            "tRTW": ("1.875ns", "ASSUMPTION: 2 nCK read-to-write bus gap as in R2-HBM3"),
            "tREFI": ("3.906us", "R2-LP5 tREFI base 3906 ns"),
            "tRFC": ("280ns", "R2-LP5 tRFCab 16 Gb: 280 ns; ASSUMPTION: used for 32 Gb"),
            "tRFCsb": ("140ns", "R2-LP5 tRFCpb 16 Gb: 140 ns; ASSUMPTION: used for 32 Gb"),
            "refresh_mode": ("per_bank", "LPDDR5 per-bank refresh REFpb (R2-LP5)"),
            "refresh_postpone": (8, "JEDEC: up to 8 refreshes may be postponed"),
            "page_policy": ("open", "ASSUMPTION: open page"),
            "address_mapping": ("RoBaCoBgPcCh", "ASSUMPTION: channel / bank-group interleaving"),
            "queue_depth": (32, "DS3 cmd_queue_size 32 (ASSUMPTION: same controller window)"),
            "row_hit_cap": (16, "ASSUMPTION: FR-FCFS cap of 16"),
            "act_energy": ("1nJ", "ASSUMPTION: a 2 KiB LPDDR page costs ~2x an HBM 1 KiB page (DS3)"),
            "read_energy_per_bit": (
                "3.5pJ",
                "ASSUMPTION anchored on Table 3: LPDDR5 3 W at 51 GB/s = 7.3 pJ/bit including "
                "background; 3.5 array + 2.0 bus + refresh/background",
            ),
            "write_energy_per_bit": ("4pJ", "ASSUMPTION: as read, plus write drivers"),
            "tsv_energy_per_bit": ("2pJ", "ASSUMPTION: LPDDR package/board bus I/O energy"),
            "refresh_energy": ("20nJ", "ASSUMPTION: one all-bank refresh of a x16 channel"),
        },
    )
)

DRAM3D_LOGIC = register_preset(
    Preset(
        name="dram3d-logic",
        kind="dram3d",
        description=(
            "custom 3D memory-on-logic stack (the paper's version 2): HBM-class DRAM layers bonded to "
            "the compute die through 8192 data TSVs at 3.2 Gb/s = 3276.8 GB/s (2x HBM4-6400), 48 GiB"
        ),
        values=_merge(
            _HBM_CORE,
            {
                "channels": (
                    64,
                    "ASSUMPTION: 64 vaults. Paper section 4 (PF 4): version 2 has a wider, denser "
                    "interface than HBM, no number given",
                ),
                "pseudo_channels": (2, "ASSUMPTION: HBM-style pseudo-channels"),
                "rows": (12288, "ASSUMPTION: 48 GiB as HBM4 = 2048 banks x 12288 rows x 2 KiB"),
                "row_bytes": ("2KiB", "ASSUMPTION: 32 columns of 64 B (a 64-bit pseudo-channel)"),
                "burst_bytes": ("64B", "ASSUMPTION: 64-bit pseudo-channel lanes x BL8"),
                "tsv_width_bits": (
                    128,
                    "ASSUMPTION: 128 data TSVs per vault, 8192 in all (8x HBM3); PF 4: 6-9 um "
                    "direct-bond pitch on N5 base dies makes this density plausible",
                ),
                "tsv_rate": (
                    "3.2Gb/s",
                    "ASSUMPTION: half HBM4's pin rate (short vertical wires, low swing); "
                    "64 x 128 x 3.2 Gb/s = 3276.8 GB/s",
                ),
                "tCK": ("0.625ns", "ASSUMPTION: HBM3 command clock (R2-HBM3 fork)"),
                "tCCD_S": ("2.5ns", "ASSUMPTION: one 64 B burst time (64 B over 64 TSVs at 3.2 Gb/s)"),
                "tCCD_L": (
                    "5ns",
                    "ASSUMPTION: HBM3's per-bank-group column rate (32 B per 2.5 ns) at 64 B bursts",
                ),
                "tRTW": ("1.25ns", "ASSUMPTION: HBM3 value (R2-HBM3)"),
                "tRFC": ("650ns", "R2-HBM3 fork tRFC table, 32 Gb layers (ASSUMPTION: same dies)"),
                "act_energy": ("1152pJ", "ASSUMPTION: DS3-derived 576 pJ per 1 KiB page, x2 for 2 KiB"),
                "read_energy_per_bit": (
                    "0.8pJ",
                    "ASSUMPTION: about half of HBM3's 1.57 pJ/bit (shorter on-die path). PF 4: version 1 "
                    "already has HBM bandwidth at 2-3x lower power",
                ),
                "write_energy_per_bit": ("1.05pJ", "ASSUMPTION: half of HBM3's 2.09 pJ/bit"),
                "tsv_energy_per_bit": (
                    "0.15pJ",
                    "ASSUMPTION: bonded TSVs into the logic die, no interposer PHY; streaming read "
                    "0.8 + 0.15 + 1152/16384 = 1.02 pJ/bit vs hbm4's 2.59 (2.5x, PF 4's 2-3x)",
                ),
                "refresh_energy": ("30.4nJ", "DS3-derived per pseudo-channel (ASSUMPTION: same dies)"),
            },
        ),
    )
)

PRESETS: tuple[Preset, ...] = (HBM3, HBM3E, HBM4, LPDDR5X, DRAM3D_LOGIC)
