"""The README runs as written: every command of every ```sh block of README.md and traces/README.md.

How a command runs here (README section *The README is tested* says the same):

* From a scratch directory holding copies of ``topologies/``, ``traces/`` and the benchmark scripts,
  with ``../shared`` beside it, so a command that writes (``--out``, ``trace gen --out``, the
  experiment suite's results) changes nothing in the checkout. ``memwall`` is ``python -m sim``;
  ``benchmarks/...`` runs with this Python.
* Shortened, unless ``MEMWALL_README_FULL=1``: the command keeps its shape, only sizes shrink:
  ``memwall run`` at most 8 requests (``--limit``) and 2 decode steps (``--steps``); ``membench`` at
  most 64 MiB (``--bytes``); a ``noc --sweep`` at most 3 points. Nothing else is changed.
* A command whose trailing comment starts with ``fails:`` is meant to fail: it must exit 2 with one
  ``memwall: error:`` line and no traceback. Every other command must exit 0 without a traceback.
* ``a && b`` runs ``b`` when ``a`` succeeded.
* Not run: the commands that are this test's own harness (installing, running the test suite), in
  ``HARNESS`` with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "traces/README.md")
FULL = os.environ.get("MEMWALL_README_FULL") == "1"
HARNESS = {
    "pip install": "installs memwall: CI's own first step (.ci/run)",
    "python -m pytest": "runs the test suite, which this test is part of",
    "MEMWALL_FUZZ_SCALE=10 python -m pytest": "runs the test suite at ten times its size",
    "bash .ci/run": "CI itself",
}
CAPS = {("run", "--limit"): 8, ("run", "--steps"): 2}
MAX_BYTES = "64MiB"
MAX_SWEEP_POINTS = 3


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str  # as written, continuation lines joined
    comment: str

    @property
    def expect_failure(self) -> bool:
        return self.comment.startswith("fails:")

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def commands(doc: str, text: str | None = None) -> list[Command]:
    """Every command line of every ```sh block of ``doc`` (``text`` overrides the file's)."""
    text = (REPO / doc).read_text(encoding="utf-8") if text is None else text
    out: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not re.fullmatch(r"\s*```(sh|bash|shell)\s*", lines[i]):
            i += 1
            continue
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            start, parts = i + 1, [lines[i]]
            while parts[-1].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                parts.append(lines[i])
            i += 1
            joined = " ".join(p.rstrip().removesuffix("\\").strip() for p in parts).strip()
            if not joined or joined.startswith("#"):
                continue
            body, _, comment = joined.partition(" #")
            out.append(Command(doc, start, body.strip(), comment.strip()))
        i += 1
    return out


ALL = [c for doc in DOCS for c in commands(doc)]


def harness(cmd: Command) -> str | None:
    return next((why for prefix, why in HARNESS.items() if cmd.text.startswith(prefix)), None)


def shortened(argv: list[str]) -> list[str]:
    """``argv`` with its sizes capped (see the module docstring); the flags stay as written."""
    if FULL or not argv or argv[0] != "memwall":
        return argv
    sub = argv[1] if len(argv) > 1 else ""
    out = list(argv)
    for i, flag in enumerate(out[:-1]):
        value = out[i + 1]
        cap = CAPS.get((sub, flag))
        if cap is not None and value.isdigit():
            out[i + 1] = str(min(int(value), cap))
        elif sub == "membench" and flag == "--bytes":
            from sim.core.units import parse_size

            if parse_size(value) > parse_size(MAX_BYTES):
                out[i + 1] = MAX_BYTES
        elif sub == "noc" and flag == "--sweep":
            lo, hi, step = (float(x) for x in value.split(":"))
            out[i + 1] = f"{lo:g}:{min(hi, lo + (MAX_SWEEP_POINTS - 1) * step):g}:{step:g}"
    if (
        sub == "run"
        and "--limit" not in out
        and not {"--batch", "--steps"} & set(out)
        and not any(a.endswith(".jsonl.gz") for a in out)
    ):
        out += ["--limit", str(CAPS[("run", "--limit")])]  # the default trace's 24 requests, shortened
    return out


def to_process(argv: list[str]) -> list[str]:
    if argv[0] == "memwall":
        return [sys.executable, "-m", "sim", *argv[1:]]
    if argv[0].startswith("benchmarks/"):
        return [sys.executable, *argv]
    return argv


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A place to run README commands: the repository's data copied, ../shared beside it."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "main"
    work.mkdir()
    for name in ("topologies", "traces", "examples"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    bench = work / "benchmarks"
    bench.mkdir()
    shutil.copy2(REPO / "benchmarks" / "run_all", bench / "run_all")
    for name in ("experiments", "sweeps"):
        shutil.copytree(
            REPO / "benchmarks" / name, bench / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shared = REPO.parent / "shared"
    if shared.exists():
        (root / "shared").symlink_to(shared.resolve())
    return work


def run_command(cmd: Command, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``cmd``; ``a && b`` runs b only when a succeeded, and returns the last one run."""
    proc = None
    for part in cmd.text.split(" && "):
        proc = _run_one(part, cwd)
        if proc.returncode != 0:
            break
    assert proc is not None
    return proc


def _run_one(text: str, cwd: Path) -> subprocess.CompletedProcess:
    env_words, words = [], shlex.split(text)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        env_words.append(words.pop(0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    env.update(w.split("=", 1) for w in env_words)
    argv = to_process(shortened(words))
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def check(cmd: Command, proc: subprocess.CompletedProcess) -> None:
    said = f"{cmd} `{cmd.text}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, said
    if cmd.expect_failure:
        assert proc.returncode == 2, said
        errors = [x for x in proc.stderr.splitlines() if x.startswith("memwall: error:")]
        assert len(errors) == 1, said
    else:
        assert proc.returncode == 0, said


@pytest.mark.parametrize("cmd", ALL, ids=str)
def test_readme_command(cmd: Command, scratch: Path):
    why = harness(cmd)
    if why is not None:
        pytest.skip(f"not run here: {why}")
    check(cmd, run_command(cmd, scratch))


def test_regenerated_sample_traces_equal_the_committed_ones(scratch: Path):
    """traces/README.md's trace gen commands (run above, into the scratch copy) rebuild the committed
    samples byte for byte: the samples are current and trace gen is deterministic."""
    gens = [
        c
        for c in ALL
        if c.text.startswith("memwall trace gen") and (REPO / shlex.split(c.text)[-1]).is_file()
    ]
    assert len(gens) >= 2, "traces/README.md lost the commands that regenerate its samples"
    for cmd in gens:
        check(cmd, run_command(cmd, scratch))
        name = shlex.split(cmd.text)[-1]
        assert (scratch / name).read_bytes() == (REPO / name).read_bytes(), f"{name} differs from {cmd}"


def test_the_run_output_shown_is_what_memwall_run_prints(scratch: Path):
    """The README's sample of ``memwall run`` (plain text, as without rich) is what it prints now,
    every row but the simulator's own speed (wall-clock)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = readme.split("```\nmemwall run\n", 1)[1].split("```", 1)[0].splitlines()
    code = (
        "import sys; sys.modules['rich'] = None; sys.argv = ['memwall', 'run']; "
        "from sim.program import run; run()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=scratch, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.splitlines()
    assert printed[0] == "memwall run"
    keep = [line for line in printed[1:] if not line.lstrip().startswith("simulator")]
    assert [line for line in shown if not line.lstrip().startswith("simulator")] == keep


NUMBER_CELL = re.compile(r"^\**(-?[\d,]*\.?\d+%?)\**(\s*\(.*\))?$")


def _tables(text: str) -> list[tuple[int, list[list[str]]]]:
    """Markdown tables as (line index of the header, body rows of cells)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|[-| :]+\|", lines[i + 1]):
            start, rows, i = i, [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out.append((start, rows))
        else:
            i += 1
    return out


def test_readme_tables_quote_their_result_files():
    """A README table whose lead-in names result files (``benchmarks/results/...md``) quotes them:
    every number in it (a cell that is a number, maybe with a note in brackets) is in one of those
    files, which the named scripts regenerate. Tables without a named file are not checked here."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    checked = 0
    for start, rows in _tables(readme):
        lead = "\n".join(lines[max(0, start - 8) : start])
        files = [REPO / f for f in re.findall(r"benchmarks/results/[\w/.-]+\.md", lead) if "NAME" not in f]
        if not files:
            continue
        text = "\n".join(f.read_text(encoding="utf-8") for f in files)
        for row in rows:
            for cell in row:
                m = NUMBER_CELL.match(cell)
                if m:
                    assert m.group(1) in text, f"README.md:{start + 1}: {m.group(1)} is in none of {files}"
                    checked += 1
    assert checked >= 40


def test_the_device_file_shown_is_the_one_shipped():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = readme.split("`--set` overrides its values):\n\n```toml\n", 1)[1].split("```", 1)[0]
    assert shown == (REPO / "examples" / "hbf-fast-read.toml").read_text(encoding="utf-8")


def test_every_doc_has_commands_and_none_is_a_harness_command_by_accident():
    for doc in DOCS:
        assert commands(doc), f"{doc} has no ```sh block"
    assert sum(1 for c in ALL if harness(c) is None) >= 20


def test_a_broken_readme_command_fails_the_test(scratch: Path):
    """The check bites: a command with a typo'd flag, and one meant to fail that succeeds."""
    text = "```sh\nmemwall run --limt 4\nmemwall describe hbf   # fails: it does not\n```\n"
    typo, not_failing = commands("README.md", text)
    for cmd in (typo, not_failing):
        with pytest.raises(AssertionError):
            check(cmd, run_command(cmd, scratch))


def test_shortening_keeps_the_flags_and_caps_the_sizes():
    argv = shlex.split("memwall run gpu-hbm t.csv --limit 50 --steps 16 --out x")
    assert shortened(argv) == (
        argv if FULL else ["memwall", "run", "gpu-hbm", "t.csv", "--limit", "8", "--steps", "2", "--out", "x"]
    )
    if not FULL:
        assert shortened(shlex.split("memwall membench --bytes 1GiB"))[-1] == "64MiB"
        assert shortened(shlex.split("memwall noc --sweep 0.05:0.8:0.05"))[-1] == "0.05:0.15:0.05"
        assert shortened(["memwall", "run"]) == ["memwall", "run", "--limit", "8"]


def test_the_speed_results_the_readme_quotes_are_current():
    """``benchmarks/results/run.json`` (regenerated by ``python benchmarks/bench_run.py``) holds the
    figures the README's speed table quotes; its simulated figures for the quick case must be what
    the code gives now, so a change that moves them fails here until the file is regenerated."""
    import json

    from sim.api import run

    stored = json.loads((REPO / "benchmarks/results/run.json").read_text())["decode_70b_hbf_hybrid"]
    fresh = run("hbf-hybrid", "llama-3.1-70b", batch=32, context=4096, steps=16).summary
    assert fresh["events"] == stored["events"]
    assert fresh["step_time_ms"] == stored["step_time_ms"]
    assert fresh["stall_breakdown"] == stored["stall_breakdown"]


def test_the_validation_report_the_readme_quotes_is_current(tmp_path):
    """``memwall validate`` rewrites ``benchmarks/results/validation/`` (the README quotes its tables):
    run now, it must write the committed tables and figures byte for byte (and the same plots)."""
    shared = REPO.parent / "shared" / "data" / "validation"
    if not shared.is_dir():
        pytest.skip("../shared/data/validation is not beside the repository")
    out = tmp_path / "validation"
    proc = subprocess.run(
        [sys.executable, "-m", "sim", "validate", "--out", str(out)],
        cwd=REPO, env={**os.environ, "MPLBACKEND": "Agg"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    committed = REPO / "benchmarks" / "results" / "validation"
    names = sorted(p.name for p in committed.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:  # plots depend on the plotting library's version: only tables and figures compared
        if not name.endswith(".png"):
            assert (out / name).read_bytes() == (committed / name).read_bytes(), (
                f"{name}: run memwall validate"
            )
