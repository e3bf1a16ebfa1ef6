"""Parameters of a 3D DRAM stack, shared by every fidelity level.

Kept apart from the models so that the controller, the closed form, the analytic twin and the timing
checker (through :class:`sim.memory.dram_timing.DramTiming`) all read one definition of the
organisation, the timings and their defaults, and so that its checks run before any model is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.core.errors import ConfigError, MemwallError
from sim.core.params import non_negative, one_of, param, positive
from sim.core.units import BANDWIDTH, COUNT, ENERGY, SIZE, TIME
from sim.memory.address_mapping import get_mapping, parse_order
from sim.memory.device import DeviceParams


@dataclass(frozen=True)
class Dram3DParams(DeviceParams):
    """Organisation, TSV bus, JEDEC-style timings (durations, rounded up to tCK), controller, energy."""

    # -- organisation ---------------------------------------------------------------------------
    channels: int = param(
        16, COUNT, "independent channels (vaults), each with its own TSV bus", check=positive
    )
    pseudo_channels: int = param(
        2,
        COUNT,
        "pseudo-channels per channel; each owns its banks and an equal share of the TSVs",
        check=positive,
    )
    bank_groups: int = param(4, COUNT, "bank groups per pseudo-channel", check=positive)
    banks_per_group: int = param(4, COUNT, "banks per bank group", check=positive)
    rows: int = param(32768, COUNT, "rows per bank", check=positive)
    row_bytes: int = param("1KiB", SIZE, "row (page) size of one bank of one pseudo-channel", check=positive)
    burst_bytes: int = param("32B", SIZE, "bytes moved by one column command (one burst)", check=positive)
    address_mapping: str = param(
        "RoBaCoBgPcCh", str, "registered address mapping (kind address_mapping), fields MSB first"
    )
    page_policy: str = param(
        "open",
        str,
        "open: a row stays open until another row of its bank is needed; closed: precharge as soon as "
        "no queued request hits the open row",
        check=one_of("open", "closed"),
    )
    # -- TSV bus ------------------------------------------------------------------------------------
    tsv_width_bits: int = param(
        64, COUNT, "data TSVs per channel (split across its pseudo-channels)", check=positive
    )
    tsv_rate: float = param("6.4Gb/s", BANDWIDTH, "transfer rate per data TSV (per pin)", check=positive)
    # -- clock and timings (rounded up to whole tCK) -------------------------------------------------
    tCK: int = param(
        "0.625ns", TIME, "command clock period; timings are rounded up to whole tCK", check=positive
    )
    tCL: int = param("14ns", TIME, "read latency: RD command to first data (CL)", check=positive)
    tCWL: int = param("4ns", TIME, "write latency: WR command to first data (CWL)", check=positive)
    tRCD: int = param("14ns", TIME, "ACT to RD/WR of the same bank", check=positive)
    tRP: int = param("14ns", TIME, "PRE to ACT of the same bank", check=positive)
    tRAS: int = param("34ns", TIME, "ACT to PRE of the same bank", check=positive)
    tRC: int = param("0ns", TIME, "ACT to ACT of the same bank; 0 means tRAS + tRP", check=non_negative)
    tCCD_S: int = param("1.25ns", TIME, "column to column, different bank group", check=positive)
    tCCD_L: int = param("2.5ns", TIME, "column to column, same bank group", check=positive)
    tRRD_S: int = param("4ns", TIME, "ACT to ACT, different bank group", check=positive)
    tRRD_L: int = param("6ns", TIME, "ACT to ACT, same bank group", check=positive)
    tFAW: int = param("30ns", TIME, "window holding at most four ACTs per pseudo-channel", check=positive)
    tWR: int = param("16ns", TIME, "write recovery: end of write data to PRE", check=positive)
    tWTR_S: int = param("6ns", TIME, "end of write data to RD, different bank group", check=positive)
    tWTR_L: int = param("8ns", TIME, "end of write data to RD, same bank group", check=positive)
    tRTP: int = param("6ns", TIME, "RD to PRE of the same bank", check=positive)
    tRTW: int = param(
        "1.25ns",
        TIME,
        "data-bus turnaround: idle gap between read data and following write data",
        check=non_negative,
    )
    tREFI: int = param(
        "3.9us", TIME, "refresh interval (all-bank REF per pseudo-channel, or per bank)", check=positive
    )
    tRFC: int = param(
        "350ns", TIME, "all-bank refresh: REF to next ACT of the pseudo-channel", check=positive
    )
    tRFCsb: int = param("200ns", TIME, "per-bank refresh: REFSB to next ACT of that bank", check=positive)
    refresh_mode: str = param(
        "per_bank",
        str,
        "per_bank (REFSB, one bank every tREFI/banks), all_bank (REF every tREFI) or off",
        check=one_of("per_bank", "all_bank", "off"),
    )
    refresh_postpone: int = param(
        8,
        COUNT,
        "refreshes that may be postponed (JEDEC: 8); bounds the checker's interval rule",
        check=non_negative,
    )
    # -- controller ---------------------------------------------------------------------------------
    queue_depth: int = param(
        32, COUNT, "FR-FCFS scheduling window per pseudo-channel, in bursts", check=positive
    )
    row_hit_cap: int = param(
        16,
        COUNT,
        "FR-FCFS starvation cap: hits served past an older request to the same bank",
        check=positive,
    )
    # -- energy -------------------------------------------------------------------------------------
    act_energy: float = param("576pJ", ENERGY, "one activation and its precharge", check=non_negative)
    read_energy_per_bit: float = param("1.57pJ", ENERGY, "per bit read (array + I/O)", check=non_negative)
    write_energy_per_bit: float = param("2.09pJ", ENERGY, "per bit written (array + I/O)", check=non_negative)
    tsv_energy_per_bit: float = param("0.95pJ", ENERGY, "per bit crossing the TSVs", check=non_negative)
    refresh_energy: float = param(
        "30nJ",
        ENERGY,
        "one all-bank refresh of one pseudo-channel (a per-bank one costs this / banks)",
        check=non_negative,
    )
    command_trace: bool = param(False, bool, "record every DRAM command in device.trace (detailed level)")

    def validate(self) -> None:
        if self.row_bytes % self.burst_bytes:
            raise ConfigError(
                f"row_bytes {self.row_bytes} must be a multiple of burst_bytes {self.burst_bytes}",
                where="row_bytes",
            )
        if self.tsv_width_bits % self.pseudo_channels:
            raise ConfigError(
                f"tsv_width_bits {self.tsv_width_bits} must split evenly over {self.pseudo_channels} "
                "pseudo-channels",
                where="tsv_width_bits",
            )
        if self.tRC and self.tRC < self.tRAS:
            raise ConfigError(f"tRC {self.tRC} ps must be >= tRAS {self.tRAS} ps", where="tRC")
        if self.refresh_mode == "all_bank" and self.tRFC >= self.tREFI:
            raise ConfigError("tRFC must be shorter than tREFI (the lane would never be free)", where="tRFC")
        if self.refresh_mode == "per_bank" and self.tREFI // (self.bank_groups * self.banks_per_group) <= 0:
            raise ConfigError("tREFI too short to refresh every bank once per tREFI", where="tREFI")
        try:
            parse_order(get_mapping(self.address_mapping).ORDER)
        except MemwallError as exc:
            raise ConfigError(exc.message, where="address_mapping") from None
