"""Shared pieces of the experiment suite: run memwall, plot, write the Markdown result.

Each experiment module defines ``NAME``, ``TITLE`` and ``run(fast: bool, out: Path) -> Path`` (the
Markdown file it wrote). ``fast`` (the default of ``benchmarks/run_all``) keeps every experiment to
seconds; ``--full`` uses publication-grade settings. Conclusions are computed from the numbers the
experiment produced, never typed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sim.experiments.run import build_run, execute


def simulate(settings: Mapping[str, Any]) -> dict[str, Any]:
    """One ``memwall run`` (same settings as the CLI and sweeps); the JSON summary."""
    spec, scheduler = build_run(settings, where="experiment")
    summary, _, _ = execute(spec, scheduler=scheduler)
    return summary


def capabilities(sides: Mapping[str, Mapping[str, Any]]) -> str:
    """What each side of a comparison had, ``{label: run settings}`` -> Markdown: the compute die,
    every memory (peak, prefetch buffer, near-memory MACs, what it holds), the fabric's collective
    launch and the software stack, read from the resolved parameters of that side's run."""
    from sim.serving.mapping import plan
    from sim.system.capabilities import capabilities_text

    blocks = []
    for label, settings in sides.items():
        spec, _ = build_run(settings, where=f"experiment side {label!r}")
        p = plan(spec.model, spec.system, spec.mapping)
        used = {"weights": p.weights_memory, "kv": p.kv_memory, "compute": p.mapping.compute}
        blocks.append(f"**{label}** (`{spec.system.name}`):\n\n{capabilities_text(spec.system, used)}")
    return "\n\n".join(blocks)


def plot(
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    series: Mapping[str, tuple[Sequence, Sequence]],
    logx: bool = False,
    logy: bool = False,
) -> Path:
    """A line plot of named (x, y) series, written as PNG.

    Each series has its own marker and line style; one that coincides with an earlier series (every
    point within 0.5%) is drawn with hollow, larger markers and says so in the legend, so neither
    hides the other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    markers, styles = "osD^vP", ("-", "--", "-.", ":")
    drawn: list[tuple[str, list, list]] = []
    for i, (name, (xs, ys)) in enumerate(series.items()):
        xs, ys = list(xs), list(ys)
        same = next((n for n, x0, y0 in drawn if _coincide(xs, ys, x0, y0)), None)
        ax.plot(
            xs,
            ys,
            marker=markers[i % len(markers)],
            linestyle=styles[i % len(styles)],
            markersize=10 if same else 6,
            markerfacecolor="none" if same else None,
            label=name if same is None else f"{name} (coincides with {same})",
        )
        drawn.append((name, xs, ys))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _coincide(xs: list, ys: list, x0: list, y0: list, rel: float = 0.005) -> bool:
    """Same x values and every y within ``rel`` of the other series'."""
    return xs == x0 and all(
        abs(a - b) <= rel * max(abs(a), abs(b), 1e-300) for a, b in zip(ys, y0, strict=True)
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(
    out: Path,
    name: str,
    title: str,
    setup: str,
    sections: Sequence[tuple[str, str]],
    conclusion: str,
    images: Sequence[Path] = (),
) -> Path:
    """``out/NAME.md``: title, setup, result sections, plots (linked relative to ``out``), conclusion."""
    parts = [f"# {title}", "", setup, ""]
    for heading, body in sections:
        parts += [f"## {heading}", "", body, ""]
    for img in images:
        parts += [f"![{img.stem}]({img.name})", ""]
    parts += ["## Conclusion", "", conclusion, ""]
    path = out / f"{name}.md"
    path.write_text("\n".join(parts))
    return path
