"""Packets as the fabric sees them. A packet of ``size_flits`` flits: head, bodies, tail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, eq=False)
class Packet:
    """One packet. Cycle times are network cycles; ``-1`` means not reached yet."""

    id: int
    src: int  # source terminal
    dst: int  # destination terminal
    size_flits: int
    create_cycle: int
    inject_cycle: int = -1  # head left the source queue into the network
    eject_cycle: int = -1  # tail left the network at the destination terminal
    hops: int = 0  # router-to-router links the head crossed
    measured: bool = False  # created in the measurement phase of a synthetic run
    route_state: int = 0  # private to the routing function (dateline class, dragonfly phase)
    on_delivered: Any = None  # callable(packet) or None
    payload: Any = field(default=None)

    @property
    def latency(self) -> int:
        return self.eject_cycle - self.create_cycle
