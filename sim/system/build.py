"""The system builder: a :class:`~sim.system.spec.SystemSpec` becomes simulated hardware.

:func:`build_system` creates, under one ``system`` component, the chips (each a compute die and its
memories, every memory with the prefetch buffer and near-memory MAC units it owns, see
:mod:`sim.system.chip`) and, when asked, the fabric that connects them at the system's fabric
fidelity. Whatever drives the hardware (the token-generation driver, an example script) receives
the built :class:`System` and never constructs hardware itself.

The chips of a tensor-parallel group do identical work on their own shards, so a run builds one
representative chip per pipeline stage (``chips``) rather than all of them; the fabric always has
every chip of the system as a terminal.
"""

from __future__ import annotations

import math

import networkx as nx

from sim.core.component import Component
from sim.core.simulation import Simulation
from sim.fabric.collectives import CollectiveCase, alpha_beta_cycles, zero_load_cycles
from sim.fabric.message_network import MessageNetwork
from sim.fabric.network import FlitNetwork
from sim.system.chip import Chip
from sim.system.software import SoftwareStack
from sim.system.spec import SystemSpec, launch_for


class System(Component):
    """Built hardware: representative chips (``chips``), optionally the fabric (``network``), and the
    host's serving software (``software``)."""

    def __init__(self, sim: Simulation, name: str, spec: SystemSpec, chips: int, network: bool) -> None:
        if chips < 1:
            raise ValueError(f"a system needs at least one chip, got {chips}")
        self.spec = spec
        self._chip_count = chips
        self._with_network = network
        self._twin: MessageNetwork | None = None
        super().__init__(sim, name)

    def build(self) -> None:
        self.software = SoftwareStack(self.sim, "software", self.spec.software, parent=self)
        self.chips = [Chip(self.sim, f"stage{s}", self.spec, parent=self) for s in range(self._chip_count)]
        self.network: FlitNetwork | MessageNetwork | None = None
        if self._with_network:
            cls = FlitNetwork if self.spec.fabric_fidelity == "flit" else MessageNetwork
            s = self.spec
            self.network = cls(self.sim, "fabric", s.topology, s.network, s.router, parent=self)

    def fabric_twin(self) -> MessageNetwork:
        """A message-level model of the fabric used only for closed forms (routes, alpha-beta
        times); it lives in a simulation of its own that never runs."""
        if self._twin is None:
            s = self.spec
            self._twin = MessageNetwork(Simulation(), "twin", s.topology, s.network, s.router)
        return self._twin


def build_system(
    sim: Simulation, spec: SystemSpec, chips: int = 1, network: bool = False, name: str = "system"
) -> System:
    """Build ``chips`` representative chips of ``spec`` (and the fabric if ``network``) in ``sim``."""
    return System(sim, name, spec, chips, network)


def collective_ps(spec: SystemSpec, twin: MessageNetwork, case: CollectiveCase) -> int:
    """What a collective costs at zero load on ``spec``'s fabric, in ps: its launch for the group
    size (``[fabric.collective_launch]``) plus its algorithm's alpha-beta time on ``twin``."""
    launch = launch_for(spec.collective_launch, len(case.ranks))
    return launch + int(alpha_beta_cycles(twin, case) * twin.cycle_ps)


def transfer_ps(spec: SystemSpec, twin: MessageNetwork, src: int, dst: int, nbytes: int) -> int:
    """What a point-to-point transfer (a pipeline-stage hand-over) costs at zero load on ``spec``'s
    fabric, in ps: the fabric's ``transfer_launch`` plus one message over the route."""
    hops = nx.shortest_path_length(twin.graph, twin.terminal_router[src], twin.terminal_router[dst])
    flits = max(1, math.ceil(nbytes / twin.params.flit_bytes))
    return spec.transfer_launch + int(zero_load_cycles(twin, hops, flits) * twin.cycle_ps)
