"""A memory technology from outside the package, found through the ``memwall.plugins`` entry point,
runs ``memwall run`` end to end (capacity, blame, energy, cost) and ``memwall report``, with no edit
inside ``sim/``.

The plugin is installed the way pip would leave it: a module plus a ``*.dist-info`` folder whose
``entry_points.txt`` names it, on the interpreter's path. ``importlib.metadata`` finds it exactly as
it finds an installed distribution.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

PLUGIN = '''
"""scm3d: a storage-class-memory stack, a 3D DRAM without refresh and with slow rows (illustrative)."""
from sim.core.registry import register
from sim.memory.dram3d import Dram3D
from sim.core.preset import Preset, register_preset


@register("memory", "scm3d")
class Scm3D(Dram3D):
    """Storage-class memory stack (plugin)."""

    price_class = "flash"  # ASSUMPTION: priced per GB like flash
    carbon_class = "flash"

    def queueing_cause(self):
        return "SCM bank busy"


register_preset(Preset(
    name="scm3d-stack",
    kind="scm3d",
    description="illustrative 16 GiB storage-class-memory stack (plugin, ASSUMPTIONS)",
    values={
        "refresh_mode": ("off", "non-volatile: no refresh"),
        "tRCD": ("60ns", "ASSUMPTION: slow row opening"),
        "fidelity": ("transaction", "the plugin's default level"),
    },
))
'''

SYSTEM = """
[system]
name = "scm-node"
chips = 2
[chip.compute]
[chip.memory.scm]
preset = "scm3d-stack"
stacks = 4
[fabric]
flit_bytes = "256B"
[fabric.topology]
kind = "fully_connected"
k = 2
[mapping]
tp = 2
"""


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    (root / "memwall_scm.py").write_text(PLUGIN)
    info = root / "memwall_scm-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memwall-scm\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[memwall.plugins]\nscm = memwall_scm\n")
    (root / "scm.toml").write_text(textwrap.dedent(SYSTEM))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    return root, env


def memwall(args, root, env):
    return subprocess.run(
        [sys.executable, "-m", "sim.cli", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plugin_memory_runs_end_to_end_with_cost_and_report(plugin_env):
    root, env = plugin_env
    out = root / "out"
    proc = memwall(
        ["run", "scm.toml", "--batch", "2", "--context", "256", "--steps", "2", "--out", str(out)], root, env
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["system"]["memories"]["scm"]["kind"] == "scm3d"
    assert summary["tokens"] == 2 * 2
    # priced by the class the plugin declares: 2 chips x (chip + 4 x 16 GiB at the flash $/GB)
    gb = 4 * 16 * 2**30 / 1e9
    assert summary["capital_usd"] == pytest.approx(2 * (25_000 + gb * 1.5))
    assert summary["energy_by_component_j"]["memory.scm"] > 0
    assert summary["stall_breakdown"]["memory bandwidth (scm)"] > 0.5
    assert summary["capacity"]["scm"]["total_bytes"] == 4 * 16 * 2**30
    pytest.importorskip("matplotlib")
    rep = memwall(["report", str(out)], root, env)
    assert rep.returncode == 0, rep.stderr
    assert (out / "report.md").is_file() and (out / "energy.png").is_file()


def test_plugin_kind_is_described_and_listed(plugin_env):
    root, env = plugin_env
    proc = memwall(["describe", "scm3d"], root, env)
    assert proc.returncode == 0, proc.stderr
    assert "Storage-class memory stack (plugin)" in proc.stdout
    listed = memwall(["describe", "memory"], root, env)
    assert "scm3d" in listed.stdout.split()
