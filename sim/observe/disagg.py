"""The summary of a disaggregated run (:mod:`sim.serving.disagg`): request latencies over both pools,
the KV transfers between them, and per pool what it did, waited and cost.

Latency (the one definition of :mod:`sim.requests.timing`): a request's first token is delivered when
its KV has reached its decode replica (prefill end for a one-token request), so
TTFT = delivery - arrival and TPOT = (last token - delivery) / (tokens - 1). The critical-path
breakdown covers every iteration of both pools; a KV transfer is no iteration's, so it is blamed where
it is waited for: ``disaggregation.ttft_breakdown`` splits the requests' TTFT into prefill queueing,
prefill and ``kv transfer`` (the time each request's KV spent on the link, port queueing included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sim.core.units import PS_PER_S
from sim.driver.blame import KV_TRANSFER, Blame
from sim.driver.token_driver import TokenDriver
from sim.observe.cost import J_PER_KWH, SECONDS_PER_YEAR, cost_params, memory_prices, replica_capital
from sim.observe.summary import energy_by_component, mean_by_key, queueing, token_figures, utilization
from sim.requests import timing
from sim.requests.load import offered_load
from sim.stats.percentiles import distribution

CONVENTION = (
    "prefill pool computes the prompt's KV and the first token; the first token reaches the client "
    "when the KV has arrived at the decode replica: TTFT = prefill queueing + prefill + KV transfer"
)


def summary(
    spec: Any,
    d: Any,
    prefill: Sequence[TokenDriver],
    decode: Sequence[TokenDriver],
    router: Any,
    handoff: Any,
    link: Any,
    sim_s: float,
) -> dict[str, Any]:
    """The merged summary (same keys as a single run's, plus ``disaggregation``)."""
    drivers = [*prefill, *decode]
    out = token_figures(drivers)
    recs = [handoff.records[i] for i in sorted(handoff.records)]
    done = [r for r in recs if r.generated > 0 and r.delivered_ps >= 0]
    out["requests"] = len(router.assigned)
    out["requests_finished"] = sum(1 for r in done if r.generated >= r.request.output_tokens)
    out["ttft_ms"] = distribution([timing.ttft_ms(r.request.arrival_ps, r.delivered_ps) for r in done])
    out["tpot_ms"] = distribution(
        [t for r in done if (t := timing.tpot_ms(r.delivered_ps, r.last_token_ps, r.generated)) is not None]
    )
    out["e2e_latency_ms"] = distribution(
        [timing.e2e_ms(r.request.arrival_ps, r.last_token_ps) for r in done if r.last_token_ps >= 0]
    )
    blame = Blame()
    for drv in drivers:
        blame.merge(drv.blame)
    transfers = list(link.log)
    out["stall_breakdown"] = blame.fractions()  # the pools' iterations; a transfer is no iteration's
    arrivals = sorted(r.arrival_ps for r in handoff.originals.values())
    out["offered_load"] = {"source": spec.label, **spec.load, **offered_load(arrivals)}

    pools = {
        "prefill": _pool(d.prefill, prefill, sim_s),
        "decode": _pool(d.decode, decode, sim_s),
    }
    pools["prefill"]["requests_per_replica"] = list(router.per_replica)
    pools["decode"]["requests_per_replica"] = list(handoff.per_replica)
    pools["prefill"]["wait_ms"] = distribution(
        [(r.prefill_admitted_ps - r.request.arrival_ps) / 1e9 for r in recs if r.prefill_admitted_ps >= 0]
    )
    pools["decode"]["wait_ms"] = distribution(
        [(r.decode_admitted_ps - r.delivered_ps) / 1e9 for r in recs if r.decode_admitted_ps >= 0]
    )
    p = d.params
    moved = sum(t.nbytes for t in transfers)
    link_j = moved * 8 * p.link_energy_per_bit * 1e-12
    span_ps = sim_s * PS_PER_S
    link_fig = {
        "bandwidth_per_chip_Bps": p.link_bandwidth,
        "egress_Bps": link.egress_Bps,
        "ingress_Bps": link.ingress_Bps,
        "latency_us": p.link_latency / 1e6,
        "egress_utilization": [b / span_ps if span_ps else 0.0 for b in link.egress_busy_ps],
        "ingress_utilization": [b / span_ps if span_ps else 0.0 for b in link.ingress_busy_ps],
        "energy_j": link_j,
    }

    tokens = int(out["tokens"])
    energy = pools["prefill"]["energy_j"] + pools["decode"]["energy_j"] + link_j
    usd = pools["prefill"]["usd"] + pools["decode"]["usd"] + _energy_usd(d.decode.system, link_j)
    grams = pools["prefill"]["co2e_g"] + pools["decode"]["co2e_g"] + _energy_g(d.decode.system, link_j)
    capital = pools["prefill"]["capital_usd"] + pools["decode"]["capital_usd"]
    by_component = {
        f"{role}.{k}": v for role, pool in pools.items() for k, v in pool.pop("energy_by_component_j").items()
    }
    by_component["kv_link"] = link_j
    per_m = 1e6 / tokens if tokens else 0.0
    power = energy / sim_s if sim_s > 0 else 0.0
    tps = tokens / sim_s if sim_s > 0 else 0.0
    out.update(
        {
            "energy_j": energy,
            "energy_by_component_j": by_component,
            "energy_j_per_token": energy / tokens if tokens else 0.0,
            "avg_power_w": power,
            "capital_usd": capital,
            "tco_usd_per_million_tokens": usd * per_m,
            "co2e_g_per_million_tokens": grams * per_m,
            "tokens_per_s_per_w": tps / power if power else 0.0,
            "tokens_per_s_per_usd": tps / capital if capital else 0.0,
            "tokens_per_usd": tokens / usd if usd else 0.0,
            "tokens_per_kg_co2e": tokens / (grams / 1000) if grams else 0.0,
            "utilization": {
                f"{role}.{k}": v for role in pools for k, v in pools[role]["utilization"].items()
            },
            "queueing_us": {
                f"{role}.{k}": v for role in pools for k, v in pools[role]["queueing_us"].items()
            },
        }
    )
    for pool in pools.values():
        pool.pop("usd")
        pool.pop("co2e_g")
    return {
        "system": f"{d.prefill.system.name} (prefill) + {d.decode.system.name} (decode)",
        "model": spec.model.name,
        "mapping": dict(d.decode.mapping.as_dict()),
        **out,
        "disaggregation": {
            "convention": CONVENTION,
            "kv_bytes_moved": moved,
            "transfers": len(transfers),
            "transfer_ms": distribution([t.duration_ps / 1e9 for t in transfers]),
            "transfer_queue_ms": distribution([t.queued_ps / 1e9 for t in transfers]),
            "ttft_breakdown": ttft_breakdown(done),
            "link": link_fig,
            **pools,
        },
    }


def _pool(pool: Any, drivers: Sequence[TokenDriver], sim_s: float) -> dict[str, Any]:
    """One pool's figures: what it ran, its utilisation and queueing (mean over its replicas), and
    its capital, energy, cost and carbon (each replica's chips are capital of their own)."""
    parts: dict[str, float] = {}
    for drv in drivers:
        for k, j in energy_by_component(drv, sim_s).items():
            parts[k] = parts.get(k, 0.0) + j
    energy = sum(parts.values())
    system = pool.system
    c = cost_params(system)
    capital, kg = replica_capital(system, pool.chips, c, memory_prices(system))
    capital, kg = capital * pool.replicas, kg * pool.replicas
    life_s = c.amortization_years * SECONDS_PER_YEAR
    usd = capital / life_s * sim_s + _energy_usd(system, energy)
    grams = _energy_g(system, energy) + kg * 1000 / life_s * sim_s
    tokens = sum(int(drv.stat.tokens.value) for drv in drivers)
    m = pool.mapping
    return {
        "system": system.name,
        "replicas": pool.replicas,
        "chips_per_replica": pool.chips,
        "mapping": {"tp": m.tp, "pp": m.pp, "weights": m.weights, "kv": m.kv, "compute": m.compute},
        "kv_capacity_tokens": pool.plan.kv_capacity_tokens,
        "tokens": tokens,
        "iterations": sum(len(drv.iterations) for drv in drivers),
        "utilization": mean_by_key([utilization(drv) for drv in drivers]),
        "queueing_us": mean_by_key([queueing(drv) for drv in drivers]),
        "capital_usd": capital,
        "energy_j": energy,
        "energy_by_component_j": parts,
        "usd": usd,
        "co2e_g": grams,
    }


def _energy_usd(system: Any, joules: float) -> float:
    c = cost_params(system)
    return joules / J_PER_KWH * c.pue * c.usd_per_kwh


def _energy_g(system: Any, joules: float) -> float:
    c = cost_params(system)
    return joules / J_PER_KWH * c.pue * c.grid_g_per_kwh


def describe(r: dict[str, Any]) -> str:
    """The ``disaggregation`` rows of ``memwall run``'s table: each pool, then the link."""
    x = r["disaggregation"]
    lines = []
    for role in ("prefill", "decode"):
        pool = x[role]
        m = pool["mapping"]
        die = ", ".join(
            f"{k} {100 * v:.1f}%" for k, v in pool["utilization"].items() if k.endswith("compute_die")
        )
        lines.append(
            f"{role}: {pool['replicas']} x {pool['system']} (tp {m['tp']}, pp {m['pp']}; weights on "
            f"{m['weights'] or 'first memory'}, KV on {m['kv'] or 'first memory'}), "
            f"${pool['capital_usd']:,.0f}, "
            f"{pool['energy_j']:.3g} J; wait p99 {pool['wait_ms']['p99']:.3f} ms; {die}"
        )
    link = x["link"]
    util = max([*link["egress_utilization"], *link["ingress_utilization"]], default=0.0)
    t = x["transfer_ms"]
    lines.append(
        f"kv transfer: {x['transfers']} transfers, {x['kv_bytes_moved'] / 1e6:,.1f} MB at "
        f"{link['bandwidth_per_chip_Bps'] / 1e9:g} GB/s per chip + {link['latency_us']:g} us; "
        f"mean {t['mean']:.3f} p99 {t['p99']:.3f} ms (queued p99 {x['transfer_queue_ms']['p99']:.3f} ms); "
        f"busiest port {100 * util:.1f}%"
    )
    share = ", ".join(f"{k} {100 * v:.1f}%" for k, v in x["ttft_breakdown"].items())
    lines.append(f"TTFT includes the KV transfer (first token delivered when the KV reaches decode): {share}")
    return "\n    ".join(lines)


def ttft_breakdown(records: Sequence[Any]) -> dict[str, float]:
    """Where the requests' time to first token went, summed over requests, as fractions: waiting for
    a prefill replica, the prefill iterations, and the KV transfer (link queueing included: the
    blame cause ``kv transfer``). Each request's three parts add up to its TTFT exactly."""
    parts = {"prefill queueing": 0, "prefill": 0, KV_TRANSFER.label: 0}
    for r in records:
        if r.prefill_admitted_ps < 0 or r.prefill_end_ps < 0:
            continue
        parts["prefill queueing"] += r.prefill_admitted_ps - r.request.arrival_ps
        parts["prefill"] += r.prefill_end_ps - r.prefill_admitted_ps
        parts[KV_TRANSFER.label] += r.delivered_ps - r.prefill_end_ps
    total = sum(parts.values())
    return {k: v / total if total else 0.0 for k, v in parts.items()}
