"""3D DRAM stack: HBM-like and logic-on-DRAM stacks (also usable for LPDDR5X).

Organisation: ``channels`` (vaults) x ``pseudo_channels`` x ``bank_groups`` x ``banks_per_group`` banks
of ``rows`` rows of ``row_bytes``. A pseudo-channel (a *lane*) is the unit that owns banks, timing state
and a share of its channel's TSV bus: ``tsv_width_bits / pseudo_channels`` data TSVs at ``tsv_rate``
each. A data burst (``burst_bytes``, one column command) crosses those lanes in ``tBURST``, so the stack
peak is ``channels x tsv_width_bits x tsv_rate`` (the analytic twin).

Three levels (``fidelity``):

* ``detailed``: one FR-FCFS controller process per lane issuing ACT/PRE/RD/WR/REF/REFSB at the earliest
  legal time (one event per command; no cycle polling). Optional command trace for
  :mod:`sim.memory.dram_checker`. Row and column commands use separate command buses (one each per tCK),
  as in HBM.
* ``transaction``: a request's row runs (see :mod:`sim.memory.address_mapping`) timed in closed form per
  lane with open-row state and busy-until bookkeeping for banks, ACT budget (tRRD/tFAW) and TSV lanes;
  one timeout per request, or none when the caller books it (:meth:`MemoryDevice.book`: the end is
  known on arrival). A large request (many rows per bank) is evaluated per bank rather than per
  row run: the mapping makes each bank's share a run of consecutive rows, so the same closed form
  costs the same for 2 MB as for 64 MB, with identical results.
* ``analytic``: the base class FIFO at the twin's peak plus :meth:`Dram3D.unloaded_latency_ps`.

Refresh: ``all_bank`` blocks a lane for tRFC every tREFI; ``per_bank`` refreshes one bank of a lane
every tREFI / banks (each bank once per tREFI), choosing an idle bank when it can, which is how HBM3
hides refresh. An idle controller sleeps; when work arrives it first replays the refreshes that fell
due while it slept, at their due times (nothing else used the lane meanwhile, so this is exact and an
idle simulation never spins).

Energy: per ACT (with its PRE), per bit read or written (array + I/O), per bit crossing the TSVs and
per refresh; accumulated into ``energy_pj`` and per-cause counters when requests complete.

Layout: one module per idea, so that each fidelity level can be read (and changed) on its own.
Imports run one way only, ``params`` -> ``tsv`` -> ``detailed`` / ``transaction`` -> ``device`` ->
this package, so no module imports one that imports it back (the models name :class:`Dram3D` in
type hints only).

* :mod:`~sim.memory.dram3d.params`: :class:`Dram3DParams`, the organisation, TSV bus, timings,
  controller and energy parameters and their cross-checks. Every level reads the same set.
* :mod:`~sim.memory.dram3d.tsv`: :class:`TsvBus`, one channel's TSV data bus as a stats component
  (busy time, bytes, occupancy), filled in by the device at finalize for every level.
* :mod:`~sim.memory.dram3d.detailed`: the ``detailed`` level, :class:`LaneController` (one FR-FCFS
  command scheduler per lane) and its request bookkeeping, plus the refresh stagger
  (:func:`first_refresh_ps`) and the internal event-count indices that every level shares.
* :mod:`~sim.memory.dram3d.transaction`: the ``transaction`` level, :class:`TransactionModel` (the
  closed form over row runs or banks). The device also uses it, on a scratch instance without
  refresh, for the analytic twin's :meth:`Dram3D.unloaded_latency_ps`.
* :mod:`~sim.memory.dram3d.device`: :class:`Dram3D`, the registered ``dram3d`` memory kind: the
  analytic twin (capacity, peak bandwidth, unloaded latency, :meth:`Dram3D.account_analytic`), the
  dispatch to the detailed and transaction models, and the stats and energy they feed.

Importing this package imports :mod:`~sim.memory.dram3d.device`, whose ``@register`` makes the
``dram3d`` kind known to :mod:`sim.core.registry` (which lists ``sim.memory.dram3d`` among its
built-in modules).
"""

from sim.memory.dram3d.detailed import DetailedRequest, LaneController, first_refresh_ps
from sim.memory.dram3d.device import Dram3D
from sim.memory.dram3d.params import Dram3DParams
from sim.memory.dram3d.transaction import TransactionModel
from sim.memory.dram3d.tsv import TsvBus

# The transaction model's name before the split into a package (tests/validation/test_dram_large.py).
_TransactionModel = TransactionModel

__all__ = [
    "DetailedRequest",
    "Dram3D",
    "Dram3DParams",
    "LaneController",
    "TransactionModel",
    "TsvBus",
    "first_refresh_ps",
]
