"""Bad fabric input fails early with a one-line ConfigError that says what is wrong and where."""

from __future__ import annotations

import pytest

from sim.core.errors import ConfigError, MemwallError
from sim.core.simulation import Simulation
from sim.experiments.collective import run_collective
from sim.experiments.noc import NocRunParams, run_noc
from sim.fabric.collectives import CollectiveCase
from sim.fabric.message_network import MessageNetwork
from sim.fabric.network import FlitNetwork, NetworkParams
from sim.fabric.router import RouterParams
from sim.topology import dragonfly, mesh, ring, torus

LEVELS = (FlitNetwork, MessageNetwork)


def build(level, graph, routing, vcs=4):
    return level(Simulation(), "net", graph, NetworkParams(routing=routing), RouterParams(vcs=vcs))


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.startswith(("routing: ", "vcs: ")), text
    return text


@pytest.mark.parametrize("level", LEVELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("graph", "routing", "vcs", "words"),
    [
        (mesh(4), "xy_magic", 4, ["unknown routing 'xy_magic'", "dor", "dor_dateline"]),
        (torus(4), "dor", 4, ["'dor'", "mesh", "'torus'"]),
        (ring(6), "dor", 4, ["'dor'", "mesh", "'ring'"]),
        (mesh(4), "dragonfly_min", 4, ["'dragonfly_min'", "dragonfly", "'mesh'"]),
        (mesh(4), "updown", 4, ["'updown'", "tree", "'mesh'"]),
        (torus(4), "dor_dateline", 1, ["'dor_dateline'", "at least 2 VCs", "found 1"]),
        (ring(5), "auto", 1, ["'dor_dateline'", "at least 2 VCs", "found 1"]),
        (mesh(4), "min_adaptive", 1, ["'min_adaptive'", "at least 2 VCs", "found 1"]),
        (dragonfly(1, 2, 1), "dragonfly_min", 1, ["'dragonfly_min'", "at least 2 VCs"]),
    ],
    ids=["unknown", "dor-torus", "dor-ring", "dragonfly-on-mesh", "updown-on-mesh", "dateline-1vc",
         "auto-ring-1vc", "adaptive-1vc", "dragonfly-1vc"],
)  # fmt: skip
def test_bad_routing_is_a_one_line_config_error(level, graph, routing, vcs, words):
    with pytest.raises(ConfigError) as exc:
        build(level, graph, routing, vcs)
    text = one_line(exc)
    for w in words:
        assert w in text


@pytest.mark.parametrize("fidelity", ["flit", "message"])
def test_run_noc_reports_bad_routing_before_simulating(fidelity):
    with pytest.raises(ConfigError, match="at least 2 VCs"):
        run_noc(torus(4), NocRunParams(fidelity=fidelity), NetworkParams(), RouterParams(vcs=1))
    with pytest.raises(ConfigError, match="unknown routing 'nope'"):
        run_noc(mesh(4), NocRunParams(fidelity=fidelity), NetworkParams(routing="nope"))


def test_run_collective_reports_bad_routing_and_bad_cases():
    case = CollectiveCase("allreduce", "ring", 1024, (0, 1, 2, 3))
    with pytest.raises(ConfigError, match="'dor' works on mesh"):
        run_collective(torus(4), case, NetworkParams(routing="dor"))
    with pytest.raises(ConfigError, match=r"ranks \[99\] outside"):
        run_collective(mesh(4), CollectiveCase("allreduce", "ring", 1024, (0, 99)))
    for bad, match in [
        (CollectiveCase("allsum", "ring", 1024, (0, 1)), "unknown collective 'allsum'"),
        (CollectiveCase("allgather", "tree", 1024, (0, 1)), "allgather supports algorithms ring"),
        (CollectiveCase("allreduce", "ring", 1024, (0,)), "at least 2 ranks"),
        (CollectiveCase("allreduce", "ring", 0, (0, 1)), "bytes > 0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            run_collective(mesh(4), bad)
    with pytest.raises(ConfigError, match="message level"):
        run_collective(mesh(4), CollectiveCase("allreduce", "in-network", 1024, (0, 1)), fidelity="flit")


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        (dict(vcs=0), "vcs"),
        (dict(vc_buffer=0), "vc_buffer"),
        (dict(t_va=0), "t_va"),
        (dict(t_rc=-1), "t_rc"),
        (dict(credit_delay=-1), "credit_delay"),
    ],
)
def test_router_params_are_checked(kw, key):
    with pytest.raises(ConfigError, match=f"^{key}: expected"):
        RouterParams(**kw)


def test_network_params_are_checked():
    with pytest.raises(ConfigError, match=r"^link_latency: expected a value >= 0"):
        NetworkParams(link_latency=-1)
    with pytest.raises(ConfigError, match=r"^inject_latency"):
        NetworkParams(inject_latency=0)


def test_traffic_errors():
    with pytest.raises(ConfigError, match="power-of-two number of terminals, found 9"):
        run_noc(mesh(3), NocRunParams(traffic="bitrev"))
    with pytest.raises(ConfigError, match="square number of terminals, found 8"):
        run_noc(ring(8), NocRunParams(traffic="transpose"))
    with pytest.raises(ConfigError, match=r"rate in \(0, 1\]"):
        run_noc(mesh(4), NocRunParams(rate=1.5))
    with pytest.raises(MemwallError, match="unknown traffic 'zipf'"):
        run_noc(mesh(4), NocRunParams(traffic="zipf"))


def test_wide_links_are_refused_at_flit_level():
    with pytest.raises(ConfigError, match="flit_bytes instead of width"):
        build(FlitNetwork, mesh(2, 1, width=2), "auto")


def test_packets_to_unknown_terminals_are_refused():
    net = build(FlitNetwork, mesh(2, 1), "auto")
    with pytest.raises(ValueError, match=r"terminal out of range 0\.\.1"):
        net.submit(net.new_packet(0, 2, 1))
