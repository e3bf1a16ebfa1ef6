"""The memwall CLI as a user runs it: JSON fields, readable tables, one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from sim.cli import main

PRESETS = ["hbf-gen1", "nand-tlc", "hbm3", "hbm3e", "hbm4", "lpddr5x", "dram3d-logic"]
REQUIRED = {
    "device",
    "pattern",
    "request_size_bytes",
    "concurrency",
    "bytes",
    "sim_time_s",
    "achieved_bandwidth_Bps",
    "mean_latency_ns",
    "p99_latency_ns",
    "peak_bandwidth_Bps",
    "unloaded_latency_ns",
    "events",
    "wall_s",
}


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("preset", PRESETS)
def test_membench_json_has_required_fields_for_every_preset(capsys, preset):
    code, out, err = run_cli(
        capsys,
        "membench",
        "--device",
        preset,
        "--bytes",
        "4MiB",
        "--request-size",
        "64KiB",
        "--concurrency",
        "16",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result.keys() >= REQUIRED
    assert result["device"] == preset
    assert result["bytes"] == 4 * 2**20
    # bandwidth is what was moved over the time it took, and never beats the analytic twin
    assert result["achieved_bandwidth_Bps"] == pytest.approx(result["bytes"] / result["sim_time_s"])
    assert result["achieved_bandwidth_Bps"] <= result["peak_bandwidth_Bps"] * (1 + 1e-9)
    assert result["mean_latency_ns"] >= result["unloaded_latency_ns"] * (1 - 1e-9)


def test_membench_is_deterministic_for_a_seed(capsys):
    args = (
        "membench",
        "--device",
        "hbm3",
        "--pattern",
        "random",
        "--bytes",
        "2MiB",
        "--request-size",
        "4KiB",
        "--seed",
        "5",
        "--json",
    )
    runs = []
    for _ in range(2):
        _, out, _ = run_cli(capsys, *args)
        r = json.loads(out)
        for volatile in ("wall_s", "events_per_s", "sim_s_per_wall_s", "simulated_bytes_per_wall_s"):
            r.pop(volatile)
        runs.append(json.dumps(r, sort_keys=True))
    assert runs[0] == runs[1]


def test_membench_table_output(capsys):
    code, out, _ = run_cli(capsys, "membench", "--device", "hbm3", "--bytes", "1MiB")
    assert code == 0
    assert "achieved bandwidth" in out and "events/s" in out


def test_membench_device_from_toml(tmp_path, capsys):
    path = tmp_path / "slow-hbf.toml"
    path.write_text('[device]\nkind = "hbf"\npreset = "hbf-gen1"\n[device.params]\ntR = "40us"\n')
    code, out, err = run_cli(capsys, "membench", "--device", str(path), "--bytes", "4MiB", "--json")
    assert code == 0, err
    assert json.loads(out)["device"] == "slow-hbf"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["membench", "--device", "hbm9"], "unknown device 'hbm9'"),
        (["membench", "--device", "hbm3", "--set", "tRCDX=3ns"], "--set tRCDX: unknown parameter"),
        (["membench", "--device", "hbf-gen1", "--set", "tR=-3us"], "--set tR: expected a value > 0"),
        (["membench", "--device", "hbf-gen1", "--set", "tR=3uss"], "expected a time such as '20us'"),
        (["membench", "--request-size=-4KiB"], "expected a size"),
        (["membench", "--request-size", "4KB/s"], "expected a size"),
        (["membench", "--concurrency", "0"], "expected a whole number > 0"),
        (["membench", "--pattern", "zigzag"], "invalid choice"),
        (["membench", "--write-ratio", "2"], "--write-ratio: expected a fraction in [0, 1]"),
        (["describe", "no-such-thing"], "nothing registered as 'no-such-thing'"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(capsys, argv, needle):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[device\nkind='hbf'", "malformed TOML"),
        ("[device]\nkind = 'hbf'\ncolour = 'red'\n", "device.colour: unknown key 'colour'"),
        ("[device]\nkind = 'hbf'\n[device.params]\nplanes_per_die = 0\n", "device.params.planes_per_die"),
        ("[device]\nkind = 'sram'\n", "device.kind"),
        ("[device]\npreset = 'nope'\n", "device.preset"),
        ("kind = 'hbf'\n", "expected a [device] table"),
    ],
)
def test_bad_device_files_name_file_and_key(tmp_path, capsys, content, needle):
    path = tmp_path / "dev.toml"
    path.write_text(content)
    code, _, err = run_cli(capsys, "membench", "--device", str(path))
    assert code == 2
    assert str(path) in err and needle in err
    assert len(err.strip().splitlines()) == 1


def test_describe_lists_kinds_and_describes_hbf(capsys):
    code, out, _ = run_cli(capsys, "describe")
    assert code == 0
    for kind in ("memory", "preset", "prefetch_policy", "address_mapping"):
        assert f"{kind}:" in out
    code, out, _ = run_cli(capsys, "describe", "hbf")
    assert code == 0
    assert "parameters:" in out and "tR" in out and "[ps]" in out
    code, out, _ = run_cli(capsys, "describe", "hbm3")
    assert code == 0 and "for kind: dram3d" in out


def test_console_script_runs_as_a_process():
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", "membench", "--bytes", "1MiB", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["device"] == "hbf-gen1"
    bad = subprocess.run(
        [sys.executable, "-m", "sim.cli", "membench", "--device", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
