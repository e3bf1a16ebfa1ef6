"""The package installs anywhere: every package listed, data shipped, one version, a licence."""

import configparser
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import sim
from sim.shipped import shipped_dir

REPO = Path(__file__).resolve().parents[2]
DATA_PACKAGES = {"sim.topologies": "topologies", "sim.traces": "traces"}


def setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def test_setup_cfg_lists_every_package_and_the_data_packages():
    cfg = setup_cfg()
    listed = set(cfg["options"]["packages"].split())
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "sim").rglob("__init__.py")}
    assert listed == found | set(DATA_PACKAGES)
    mapped = dict(
        (k.strip(), v.strip())
        for k, v in (line.split("=") for line in cfg["options"]["package_dir"].split("\n") if line)
    )
    assert mapped == DATA_PACKAGES


def test_one_version_string():
    cfg = setup_cfg()
    assert cfg["metadata"]["version"].strip() == "attr: sim.__version__"
    hits = [p for p in (REPO / "sim").rglob("*.py") if sim.__version__ in p.read_text()]
    assert hits == [REPO / "sim" / "__init__.py"]
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "--version"], capture_output=True, text=True)
    assert proc.stdout.strip() == f"memwall {sim.__version__}"


def test_licence_file_matches_metadata():
    assert setup_cfg()["metadata"]["license"].strip() == "Apache-2.0"
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_shipped_data_is_found():
    assert (shipped_dir("topologies") / "default.toml").is_file()
    assert (shipped_dir("traces") / "azure_conv_200.csv").is_file()
    with pytest.raises(ValueError):
        shipped_dir("elsewhere")


@pytest.mark.slow
def test_a_built_wheel_runs_the_main_job_from_an_unrelated_directory(tmp_path):
    """What `pip install .` installs (the wheel), imported from outside the checkout, gives the same
    `memwall run` figures as the source tree."""
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("memwall-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(site)
    assert "sim/topologies/default.toml" in names and "sim/traces/azure_conv_200.csv" in names
    assert "sim/data/models/architectures.toml" in names
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sim, sim.shipped as s; print(sim.__file__); print(s.shipped_dir('traces'))",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.split() == [str(site / "sim" / "__init__.py"), str(site / "sim" / "traces")]
    installed = subprocess.run(
        [sys.executable, "-m", "sim.cli", "run", "--json"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    source = subprocess.run(
        [sys.executable, "-m", "sim.cli", "run", "--json"], cwd=REPO, capture_output=True, text=True
    )
    wall = {"wall_s", "events_per_s", "sim_s_per_wall_s"}
    a, b = ({k: v for k, v in json.loads(p.stdout).items() if k not in wall} for p in (installed, source))
    assert a == b
