"""KV tier traffic: the prefix cache's promotions, demotions and insertions as timed memory traffic.

The prefix cache (:mod:`sim.serving.prefix_cache`) says which blocks move between which media; this
module issues those bytes, on every pipeline stage's chip, to the media's timing models:

* a memory of the chip (HBM, HBF, ...): reads and writes to that memory's device at its fidelity
  (the analytic twin books them in closed form, the transaction level queues them against the
  weight and KV streams), one stack's share per device as the driver does for the KV cache;
* host memory: the chip's host link, one FIFO server per direction at ``host_bandwidth`` plus
  ``host_latency`` per transfer (PCIe is full duplex).

**Timing rule (not overlapped).** The moves an iteration's scheduling and the previous iteration's
completion caused (promotions of the blocks a newly admitted request hits, demotions, insertions of
finished prefills) are issued together, each source read streaming into its destination write,
before the iteration's own work, and the iteration waits for all of them. Its critical path is
blamed ``kv tier transfer (MEDIUM)`` for the medium that finished last. This is an upper bound on
what a tier costs: engines that overlap the copies with the layers (Mooncake, LMCache's layer-wise
loading) hide part of it.

**Flash.** A tier on a memory with a write endurance (``endurance`` on its params: HBF) is written
as a log: each block takes whole pages, written sequentially through the tier's region at the top of
the stack's address space, wrapping around; the device counts its
page programs and, when the log comes round again, the erase of each block before it is rewritten
(its erase-before-write model); reads of cached blocks stream through the region in order (the
block's own address would only change page-register hits). That is the best case for wear (write
amplification 1, no garbage collection): :meth:`KVTierTraffic.flash_summary` reports pages written,
P/E cycles per block of the region and the projected lifetime at the run's write rate.

**The region is whole erase stripes** (one erase block on every plane, ``n_planes x block_bytes``:
4 GiB per stack for hbf-gen1), rounded *up* from the configured capacity. Why: pages interleave
over every plane, so any range of the log touches a block on each plane, and flash erases whole
blocks; a log wrapping inside a stripe would erase blocks still partly unused and hold the whole
stripe anyway. The tier therefore really occupies the rounded region (it must fit in the free
flash, and its wear spreads over it), which can be many times the configured capacity for a small
tier. The summary says so: ``region_bytes_per_stack`` (the footprint, what ``max_pe_cycles`` and
``lifetime_days_region_only`` are over), ``configured_bytes_per_stack``, ``region_rounded_up``, and
``lifetime_days_configured_only``: the same closed form over the configured bytes alone (a log that
wrapped there, i.e. a device with erase blocks that small).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from sim.core.errors import ConfigError
from sim.core.units import PS_PER_S, transfer_ps
from sim.driver.blame import MEMORY, Blame, Cause
from sim.memory.device import MemRequest
from sim.serving.prefix_cache import HOST, PrefixCache
from sim.system.chip import Chip, ChipMemory

SECONDS_PER_DAY = 86_400


def kv_tier_transfer(medium: str) -> Cause:
    """Critical-path time an iteration waited for KV blocks to move to or from a tier."""
    return Cause("kv tier transfer", medium, MEMORY)


class HostLink:
    """A chip's link to host memory: a FIFO server per direction plus a start-up latency per transfer."""

    def __init__(self, bandwidth_Bps: float, latency_ps: int) -> None:
        self.bandwidth = bandwidth_Bps
        self.latency = latency_ps
        self.free = {False: 0, True: 0}  # direction (write = to host) -> busy until (ps)

    def book(self, nbytes: int, write: bool, now: int) -> int:
        start = max(now, self.free[write])
        self.free[write] = start + transfer_ps(nbytes, self.bandwidth)
        return self.free[write] + self.latency


@dataclass
class FlashRegion:
    """A tier's log on one flash stack: ``[base, base + size)``, written at ``cursor``."""

    base: int
    size: int
    slot: int  # bytes one block takes on one stack (whole pages)
    page: int
    stripe: int  # bytes of one erase block on every plane (the log's alignment)
    configured: int  # bytes the tier's capacity asked for (whole slots; the free flash when unbounded)
    cursor: int = 0
    read_cursor: int = 0
    blocks_written: int = 0


class KVTierTraffic:
    """Issues a :class:`PrefixCache`'s moves on the chips of a run (see the module docstring)."""

    def __init__(
        self, env: simpy.Environment, chips: list[Chip], cache: PrefixCache, free_bytes: dict[str, int]
    ) -> None:
        """``free_bytes``: per memory name, the bytes per chip the mapping leaves free (an unbounded
        flash tier's log spans them)."""
        self.env = env
        self.chips = chips
        self.cache = cache
        p = cache.params
        self.links = [HostLink(p.host_bandwidth, p.host_latency) for _ in chips]
        self.free_bytes = free_bytes
        self.flash: dict[str, list[FlashRegion]] = {}  # memory name -> region per chip
        self.bytes_issued: dict[str, dict[str, int]] = {}  # medium -> {"read", "written"} bytes per chip
        self.waited_ps = 0
        for t in cache.tiers:
            if t.name != HOST and t.name not in chips[0].memories:
                known = ", ".join([*chips[0].memories, HOST])
                raise ConfigError(
                    f"unknown tier {t.name!r}; expected a memory of the chip or 'host' ({known})",
                    where="prefix_cache.tiers",
                )

    # -- flash log ----------------------------------------------------------------------------------
    def _region(self, chip: int, mem: ChipMemory) -> FlashRegion | None:
        """The tier's log on ``mem`` (None for a memory without write endurance)."""
        params = mem.device.params
        if getattr(params, "endurance", None) is None:
            return None
        regions = self.flash.setdefault(mem.name, [])
        if chip < len(regions):
            return regions[chip]
        dev = mem.device
        page = params.page_size
        stripe = dev.n_planes * dev.block_bytes
        per_stack = mem.share(self.cache.block_bytes(self.cache.block_tokens))
        slot = -(-per_stack // page) * page
        tier = next(t for t in self.cache.tiers if t.name == mem.name)
        free = self.free_bytes.get(mem.name, 0) // mem.stacks // stripe * stripe
        cap = tier.capacity_blocks
        configured = free if cap is None else cap * slot
        size = -(-configured // stripe) * stripe
        if size < slot or size > free:
            raise ConfigError(
                f"tier {mem.name!r} needs {size:,} B per stack for its log, and {mem.name!r} has "
                f"{free:,} B per stack free after the mapping's weights and KV cache",
                where="prefix_cache.capacity",
            )
        base = (mem.capacity - size) // stripe * stripe
        regions.append(FlashRegion(base, size, slot, page, stripe, configured))
        return regions[chip]

    def _flash_io(self, region: FlashRegion, blocks: int, write: bool) -> list[MemRequest]:
        """Requests for ``blocks`` slots through the log (split where it wraps)."""
        out: list[MemRequest] = []
        left = blocks * region.slot
        while left > 0:
            cur = region.cursor if write else region.read_cursor
            n = min(left, region.size - cur)
            out.append(MemRequest(region.base + cur, n, write))
            cur = (cur + n) % region.size
            if write:
                region.cursor = cur
            else:
                region.read_cursor = cur
            left -= n
        if write:
            region.blocks_written += blocks
        return out

    # -- issuing ---------------------------------------------------------------------------------
    def settle(self) -> Generator[simpy.Event, Any, Blame]:
        """Issue every pending move on every stage's chip; wait for all; the time, blamed."""
        moves = self.cache.take_moves()
        blame = Blame()
        if not moves:
            return blame
        block = self.cache.block_bytes(self.cache.block_tokens)
        counts: dict[tuple[str, bool], int] = {}  # (medium, write) -> blocks
        for m in moves:
            blocks = m.nbytes // block
            counts[(m.source, False)] = counts.get((m.source, False), 0) + blocks
            counts[(m.dest, True)] = counts.get((m.dest, True), 0) + blocks
        env = self.env
        now = env.now
        ends: dict[str, int] = {}
        events: list[tuple[str, simpy.Event]] = []
        for i, chip in enumerate(self.chips):
            for (medium, write), blocks in sorted(counts.items()):
                nbytes = blocks * block
                rec = self.bytes_issued.setdefault(medium, {"read": 0, "written": 0})
                if i == 0:
                    rec["written" if write else "read"] += nbytes
                if medium == HOST:
                    ends[medium] = max(ends.get(medium, now), self.links[i].book(nbytes, write, now))
                    continue
                mem = chip.memories[medium]
                region = self._region(i, mem)
                if region is not None:
                    reqs = self._flash_io(region, blocks, write)
                else:
                    per = mem.share(nbytes)
                    addr = mem.cursor % max(1, mem.capacity - per)
                    mem.cursor = (mem.cursor + per) % max(1, mem.capacity // 2)
                    reqs = [MemRequest(addr, per, write)]
                for req in reqs:
                    end = mem.device.book(req)
                    if end is None:
                        events.append((medium, mem.device.access(req)))
                    else:
                        ends[medium] = max(ends.get(medium, now), end)
        last = max(ends.values(), default=now)
        if last > now:
            yield env.timeout(last - now)
        for medium, ev in events:
            if not ev.processed:
                yield ev
            ends[medium] = max(ends.get(medium, now), env.now)
        done = env.now
        if done > now:
            slowest = max(ends, key=lambda k: (ends[k], k))
            blame.add(kv_tier_transfer(slowest), done - now)
            self.waited_ps += done - now
        return blame

    # -- results ----------------------------------------------------------------------------------
    def flash_summary(self, sim_ps: int) -> dict[str, Any]:
        """Per flash tier: what its log wrote on one stack and what that does to the flash's life."""
        out: dict[str, Any] = {}
        sim_s = sim_ps / PS_PER_S
        for name, regions in self.flash.items():
            region = regions[0]
            dev = self.chips[0].memories[name].device
            written = region.blocks_written * region.slot
            erases: list[int] = []
            for sb in range(region.size // region.stripe):
                for j in range(dev.n_planes):
                    addr = region.base + sb * region.stripe + j * region.page
                    erases.append(dev.pe_cycles(dev.block_of(addr)))
            total = sum(erases)
            wa = max(1.0, total * dev.block_bytes / written) if written else 1.0
            rate = written / sim_s if sim_s > 0 else 0.0
            endurance = dev.params.endurance
            life = dev.projected_lifetime_s(rate, wa)
            region_life = math.inf if rate <= 0 else endurance * region.size / (rate * wa)
            # the same closed form over the configured capacity alone: a log that wrapped there
            configured_life = math.inf if rate <= 0 else endurance * region.configured / rate
            out[name] = {
                "region_bytes_per_stack": region.size,  # the flash the log really spans
                "configured_bytes_per_stack": region.configured,
                "region_rounded_up": region.size > region.configured,
                "region_blocks_per_stack": len(erases),
                "blocks_written": region.blocks_written,
                "slot_bytes_per_stack": region.slot,
                "bytes_written_per_stack": written,
                "pages_written_per_stack": written // region.page,
                "write_rate_Bps_per_stack": rate,
                "block_erases": total,
                "max_pe_cycles": max(erases, default=0),
                "mean_pe_cycles": total / len(erases) if erases else 0.0,
                "endurance_cycles": endurance,
                "write_amplification": wa,
                "lifetime_days": life / SECONDS_PER_DAY,
                "lifetime_days_region_only": region_life / SECONDS_PER_DAY,  # over region_bytes_per_stack
                "lifetime_days_configured_only": configured_life / SECONDS_PER_DAY,
            }
        return out

    def summary(self, sim_ps: int) -> dict[str, Any]:
        return {
            "transfer_wait_s": self.waited_ps / PS_PER_S,
            "bytes_issued_per_chip": {k: dict(v) for k, v in sorted(self.bytes_issued.items())},
            "flash": self.flash_summary(sim_ps),
        }
