"""Invariants of the HBF device over random small geometries and request mixes (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.simulation import Simulation
from sim.core.units import transfer_ps
from sim.memory.device import MemRequest
from sim.memory.hbf import HBFParams, HighBandwidthFlash
from sim.memory.prefetch import Prefetcher, PrefetchParams

FAST = settings(max_examples=30, deadline=None)


@st.composite
def geometries(draw: st.DrawFn) -> dict:
    planes = draw(st.integers(1, 4))
    page = draw(st.sampled_from([1024, 2048, 4096]))
    return dict(
        channels=draw(st.integers(1, 3)),
        dies_per_channel=draw(st.integers(1, 2)),
        planes_per_die=planes,
        multiplane=draw(st.integers(0, planes)),  # 0: all planes
        blocks_per_plane=draw(st.integers(1, 3)),
        pages_per_block=draw(st.integers(1, 4)),
        page_size=page,
        sector_size=draw(st.sampled_from([s for s in (512, 1024, 2048) if page % s == 0])),
        tR=draw(st.integers(1_000_000, 20_000_000)),
        tPROG=draw(st.integers(10_000_000, 100_000_000)),
        tBERS=draw(st.integers(100_000_000, 500_000_000)),
        channel_rate=draw(st.sampled_from(["0.5GB/s", "2GB/s", "10GB/s"])),
        interface_rate=draw(st.sampled_from(["1GB/s", "4GB/s", "40GB/s"])),
        base_latency=draw(st.integers(0, 200_000)),
        fidelity=draw(st.sampled_from(["detailed", "transaction"])),
    )


@st.composite
def workloads(draw: st.DrawFn) -> tuple[dict, list[tuple[int, int, int, bool]]]:
    geo = draw(geometries())
    capacity = (
        (geo["channels"] * geo["dies_per_channel"] * geo["planes_per_die"] * geo["blocks_per_plane"])
        * geo["pages_per_block"]
        * geo["page_size"]
    )
    reqs = []
    for _ in range(draw(st.integers(1, 25))):
        addr = draw(st.integers(0, capacity - 1))
        size = draw(st.integers(1, min(capacity - addr, 3 * geo["page_size"])))
        delay = draw(st.integers(0, 30_000_000))
        reqs.append((delay, addr, size, draw(st.booleans())))
    return geo, reqs


def touched(addr: int, size: int, page: int, sector: int) -> tuple[int, int]:
    """(pages, bytes moved) by a request: each page moves its touched sectors, independently derived."""
    pages = moved = 0
    for pg in range(addr // page, (addr + size - 1) // page + 1):
        lo = max(addr, pg * page) - pg * page
        hi = min(addr + size, (pg + 1) * page) - pg * page
        sectors = len(range(lo // sector * sector, hi, sector))
        pages += 1
        moved += sectors * sector
    return pages, moved


def replay(geo: dict, reqs: list[tuple[int, int, int, bool]], seed: int = 0):
    sim = Simulation(seed)
    dev = HighBandwidthFlash(sim, "hbf", HBFParams(**geo))
    issued: list[MemRequest] = []

    def client(delay: int, req: MemRequest):
        yield sim.env.timeout(delay)
        issued.append(req)
        yield dev.access(req)

    for i, (delay, addr, size, write) in enumerate(reqs):
        sim.env.process(client(delay, MemRequest(addr, size, write=write, id=i)))
    sim.run()
    sim.finalize()
    return sim, dev, issued


@FAST
@given(workloads())
def test_every_request_completes_and_bytes_are_conserved(work):
    geo, reqs = work
    _, dev, issued = replay(geo, reqs)
    stat = dev.stat
    assert len(issued) == len(reqs)
    assert all(r.done_ps >= r.arrive_ps >= 0 for r in issued)
    assert stat.inflight.value == 0
    reads = [r for r in issued if not r.write]
    writes = [r for r in issued if r.write]
    assert stat.reads.value == len(reads) and stat.writes.value == len(writes)
    assert stat.bytes_read.value == sum(r.size for r in reads)
    assert stat.bytes_written.value == sum(r.size for r in writes)
    page, sector = dev.params.page_size, dev.params.sector_size
    per_req = [touched(r.addr, r.size, page, sector) for r in issued]
    assert stat.channel_bytes.value == sum(m for _, m in per_req) == stat.interface_bytes.value
    # every page a read touches is either sensed or served from its plane's page register
    touched_read = sum(n for (n, _), r in zip(per_req, issued, strict=True) if not r.write)
    assert stat.pages_read.value + stat.register_hits.value == touched_read
    assert stat.pages_read.value >= 1 if touched_read else stat.pages_read.value == 0
    assert stat.pages_programmed.value == sum(n for (n, _), r in zip(per_req, issued, strict=True) if r.write)
    # Every erase is one P/E cycle of one block.
    assert sum(dev.pe_cycles(b) for b in range(dev.n_blocks)) == stat.block_erases.value
    # Queues drain: every wait that started has ended.
    for lvl in (stat.plane_queue, stat.die_queue, stat.channel_queue, stat.interface_queue):
        assert lvl.value == 0


@FAST
@given(workloads())
def test_latency_never_beats_the_fastest_possible_page(work):
    geo, reqs = work
    _, dev, issued = replay(geo, reqs)
    p = dev.params
    one_sector = transfer_ps(p.sector_size, p.channel_rate) + transfer_ps(p.sector_size, p.interface_rate)
    fast = 0
    for r in issued:
        if r.write:
            assert r.latency_ps >= p.tPROG + one_sector + p.base_latency
        else:
            # a read pays tR unless its pages were all in their planes' page registers
            assert r.latency_ps >= one_sector + p.base_latency
            fast += r.latency_ps < p.tR + one_sector + p.base_latency
    assert fast <= dev.stat.register_hits.value
    # Busy time can never exceed elapsed time on any single server.
    now = dev.env.now
    assert dev.stat.interface_utilization.value <= 1.0 + 1e-12
    assert dev.stat.channel_utilization.hi <= 1.0 + 1e-12 or now == 0
    assert dev.stat.plane_utilization.hi <= 1.0 + 1e-12 or now == 0


@FAST
@given(geometries(), st.integers(2, 6))
def test_same_plane_reads_complete_in_fifo_order_one_tR_apart(geo, n):
    # n single-sector reads of one plane, issued together: the plane serves them in order.
    p = HBFParams(**geo)
    planes = p.channels * p.dies_per_channel * p.planes_per_die
    rows = p.blocks_per_plane * p.pages_per_block
    n = min(n, rows)
    reqs = [(0, k * planes * p.page_size, p.sector_size, False) for k in range(n)]
    _, _, issued = replay(geo, reqs)
    done = [r.done_ps for r in sorted(issued, key=lambda r: r.id)]
    assert done == sorted(done)
    bus = transfer_ps(p.sector_size, p.channel_rate) + transfer_ps(p.sector_size, p.interface_rate)
    if bus <= p.tR:  # the buses drain each page before the next is sensed
        assert done == [(k + 1) * p.tR + bus + p.base_latency for k in range(n)]


@settings(max_examples=10, deadline=None)
@given(workloads(), st.integers(0, 2**31))
def test_same_seed_gives_identical_results(work, seed):
    geo, reqs = work
    a, _, _ = replay(geo, reqs, seed)
    b, _, _ = replay(geo, reqs, seed)
    assert a.results() == b.results()


@settings(max_examples=25, deadline=None)
@given(
    geometries(),
    st.sampled_from(["on_demand", "sequential", "next_tensor"]),
    st.integers(1, 12),
    st.lists(st.integers(1, 9000), min_size=1, max_size=4),
    st.integers(0, 20_000_000),
)
def test_prefetch_streams_conserve_pages_and_respect_the_window(geo, policy, window, sizes, consume):
    sim = Simulation(0)
    dev = HighBandwidthFlash(sim, "hbf", HBFParams(**geo))
    pf = Prefetcher(sim, "pf", dev, PrefetchParams(policy=policy, window_pages=window))
    tensors, addr = [], 0
    for size in sizes:
        size = min(size, dev.capacity_bytes - addr)
        if size <= 0:
            break
        tensors.append((addr, size))
        addr += size
    reports = []

    def consumer():
        for i, (base, size) in enumerate(tensors):
            hint = tensors[i + 1] if i + 1 < len(tensors) else None
            rep = yield from pf.stream(i, base, size, hint_next=hint, consume_ps_per_page=consume)
            reports.append(rep)

    sim.env.process(consumer())
    sim.run()
    sim.finalize()
    assert len(reports) == len(tensors)
    for rep, (base, size) in zip(reports, tensors, strict=True):
        assert rep.hits + rep.late_hits + rep.misses == rep.pages == len(pf.chunks(base, size))
        assert rep.end_ps >= rep.start_ps + rep.pages * consume
        assert 0 <= rep.stall_ps <= rep.end_ps - rep.start_ps
    if policy == "on_demand":
        assert all(rep.hits == 0 and rep.late_hits == 0 for rep in reports)
    occ = pf.stat.window_occupancy
    assert occ.hi <= window and occ.value == 0
    assert pf.stat.bytes.value == sum(s for _, s in tensors)
    assert pf.stat.bytes_requested.value == pf.stat.bytes.value + pf.stat.wasted_bytes.value
    assert dev.stat.bytes_read.value == pf.stat.bytes_requested.value
