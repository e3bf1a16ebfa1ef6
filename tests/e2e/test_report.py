"""memwall report DIR: plots and a Markdown page from a run's --out directory."""

import json
import re
import sys

import pytest

from sim.cli import _Parser, main
from sim.observe import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

NOC_SWEEP = [
    {
        "topology": "mesh",
        "k": 4,
        "traffic": "uniform",
        "offered_flits_per_node_cycle": rate,
        "accepted_flits_per_node_cycle": min(rate, 0.4),
        "mean_packet_latency_cycles": 18 + 40 * rate**4,
        "p99_packet_latency_cycles": 30 + 80 * rate**4,
        "saturated": rate > 0.4,
    }
    for rate in (0.05, 0.15, 0.25, 0.35, 0.45)
]


def report_cli(*argv):
    """Parse with report's own parser (as sim.cli will wire it) and run cmd_report."""
    parser = _Parser(prog="memwall")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    report.add_parser(sub, _Parser)
    args = parser.parse_args(["report", *argv])
    return args.func(args)


def linked_pngs(md):
    return set(re.findall(r"\]\(([^)]+\.png)\)", md))


def check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5000, path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, two_gpus_system):
    pytest.importorskip("matplotlib")
    tmp = tmp_path_factory.mktemp("run")
    system = two_gpus_system
    out = tmp / "out"
    argv = ["run", str(system), "traces/azure_conv_200.csv", "--model", "llama-3.1-8b"]
    assert main([*argv, "--limit", "3", "--out", str(out)]) == 0
    return out


def test_report_from_a_run(run_dir, capsys):
    capsys.readouterr()
    assert report_cli(str(run_dir)) == 0
    out, err = capsys.readouterr()
    assert "report.md" in out and err == ""
    pngs = {p.name for p in run_dir.glob("*.png")}
    expected = {"step_time.png", "tpot.png", "stalls.png", "utilization.png", "roofline.png", "op_times.png"}
    assert expected <= pngs
    for name in pngs:
        check_png(run_dir / name)
    md = (run_dir / "report.md").read_text()
    assert md.startswith("# memwall report: llama-3.1-8b")
    assert linked_pngs(md) == pngs  # every PNG is linked, and every link resolves
    for figure in ("TTFT (ms)", "TPOT (ms)", "step time (ms)", "tokens/s", "energy/token"):
        assert figure in md
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary.get("energy_by_component_j"):
        assert "energy.png" in pngs
    assert "Roofline is approximate" in md
    assert "noc_latency.png" not in pngs


def test_report_skips_absent_inputs(run_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "iterations.csv").write_text((run_dir / "iterations.csv").read_text())
    assert report_cli(str(tmp_path)) == 0
    pngs = {p.name for p in tmp_path.glob("*.png")}
    assert pngs == {"step_time.png", "stalls.png"}  # stalls from iterations.csv top causes
    md = (tmp_path / "report.md").read_text()
    assert linked_pngs(md) == pngs
    assert "TPOT distribution skipped" in md and "Utilisation skipped" in md and "Roofline skipped" in md


def test_noc_sweep_and_mesh_heatmap(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "noc.json").write_text(json.dumps(NOC_SWEEP))
    links = {}
    for i in range(16):
        if i % 4 < 3:
            links[f"{i}-{i + 1}"] = 0.1 * (i % 4)
            links[f"{i + 1}-{i}"] = 0.2
        if i < 12:
            links[f"{i}-{i + 4}"] = 0.5
            links[f"{i + 4}-{i}"] = 0.05 * i
    (tmp_path / "mesh_links.json").write_text(json.dumps({"k": 4, "links": links}))
    assert report_cli(str(tmp_path)) == 0
    pngs = {p.name for p in tmp_path.glob("*.png")}
    assert pngs == {"noc_latency.png", "mesh_links.png"}
    for name in pngs:
        check_png(tmp_path / name)
    md = (tmp_path / "report.md").read_text()
    assert linked_pngs(md) == pngs
    assert "NoC sweep: 5 loads" in md and "saturated" in md


def test_missing_dir_is_one_line_exit_2(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert report_cli(str(tmp_path / "nope")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "nope" in err and err.startswith("memwall: error:")


def test_without_matplotlib_exit_2_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    assert report_cli(str(tmp_path)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "memwall report needs matplotlib: pip install 'memwall[plots]'\n"


def test_blame_by_op_sums_typed_rows_per_op():
    rows = [
        {"op_id": "0", "label": "compute die", "us": "5.872"},
        {"op_id": "0", "label": "memory bandwidth (hbm)", "us": "1e1"},
        {"op_id": "1", "label": "compute die", "us": "1"},
        {"op_id": "1", "label": "compute die", "us": "2"},
        {"op_id": "2", "label": "bad", "us": "nan"},
    ]
    assert report.blame_by_op(rows) == {
        "0": {"compute die": 5.872, "memory bandwidth (hbm)": 10.0},
        "1": {"compute die": 3.0},
    }
    assert report.blame_by_op(None) == {}


def test_noc_out_writes_link_loads_that_add_up_and_report_draws_the_heatmap(tmp_path, capsys):
    """``memwall noc --out`` (flit level, 4x4 mesh): every flit that crossed a link is counted on
    exactly one directed link, so the link loads times the cycles run add up to the run's flit hops;
    no link carries more than one flit per cycle; ``memwall report`` then draws the heatmap."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "noc"
    argv = ["noc", "--topology", "mesh", "--k", "4", "--rate", "0.2", "--warmup", "200", "--measure", "400"]
    assert main([*argv, "--drain", "2000", "--out", str(out), "--quiet"]) == 0
    noc = json.loads((out / "noc.json").read_text())
    mesh = json.loads((out / "mesh_links.json").read_text())
    links = mesh["links"]
    assert mesh["k"] == 4 and len(links) == 2 * 2 * 4 * 3  # 24 links, both directions
    assert all(0.0 <= u <= 1.0 for u in links.values())
    assert sum(links.values()) * noc["cycles"] == pytest.approx(noc["flit_hops"], rel=1e-9)
    assert main(["report", str(out)]) == 0
    check_png(out / "mesh_links.png")
    capsys.readouterr()


def test_noc_out_at_message_level_or_off_mesh_writes_no_link_file(tmp_path):
    out = tmp_path / "ring"
    assert main(["noc", "--topology", "ring", "--k", "8", "--rate", "0.1", "--out", str(out), "--quiet"]) == 0
    assert (out / "noc.json").exists() and not (out / "mesh_links.json").exists()
    again = tmp_path / "msg"
    argv = ["noc", "--topology", "mesh", "--k", "4", "--fidelity", "message", "--out", str(again), "--quiet"]
    assert main(argv) == 0
    assert not (again / "mesh_links.json").exists()
