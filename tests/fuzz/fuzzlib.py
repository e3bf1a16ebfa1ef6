"""The fuzz harness: run memwall on a generated input and judge what came out.

Every case ends in one of five verdicts:

* ``error``: exit 2 and one line on stderr, ``memwall: error: WHERE: ...``, that names a place (a
  file, a key path or a flag) and does not echo the input's content;
* ``ok``: exit 0 and output that makes sense (finite, non-negative, conserved figures);
* ``traceback``: any exception escaping ``main`` (a bug);
* ``hang``: no answer within the time limit (a bug);
* ``nonsense``: exit 0 with output that cannot be right, or a malformed error (a bug).

The suite passes when no case is a bug. The cases are made by :mod:`strategies`; the CLI runs in
this process (``sim.cli.main``) so thousands of cases fit in CI.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.cli import main

VERDICTS = ("ok", "error", "traceback", "hang", "nonsense")
BUGS = ("traceback", "hang", "nonsense")
TIME_LIMIT_S = 15.0  # generous on a loaded 2-core CI machine; cases take ~0.05 s


class _Hang(BaseException):
    """Raised in the main thread when a case runs past its time limit."""


@dataclass
class Outcome:
    kind: str
    argv: list[str]
    code: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    verdict: str = ""
    detail: str = ""
    files: dict[str, bytes] = field(default_factory=dict)

    def describe(self) -> str:
        shown = {k: v[:300] for k, v in self.files.items()}
        return (
            f"[{self.kind}] {self.verdict}: {self.detail}\n  argv: {self.argv}\n  exit {self.code} "
            f"in {self.seconds:.2f} s\n  stderr: {self.stderr[-1500:]}\n  files: {shown}"
        )


def run_cli(argv: Sequence[str], limit_s: float = TIME_LIMIT_S) -> Outcome:
    """``memwall ARGV`` in this process, with stdout/stderr captured and a time limit."""
    out, err = io.StringIO(), io.StringIO()
    o = Outcome("", list(argv))

    def expire(signum: int, frame: Any) -> None:
        raise _Hang()

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            o.code = main(list(argv))
    except _Hang:
        o.verdict, o.detail = "hang", f"no answer in {limit_s:.0f} s"
    except SystemExit as exc:  # main never lets one out, but argparse might
        o.code = int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except BaseException:
        o.verdict, o.detail = "traceback", traceback.format_exc(limit=-6)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    o.seconds = time.perf_counter() - t0
    o.stdout, o.stderr = out.getvalue(), err.getvalue()
    return o


def judge(o: Outcome, check_ok: Callable[[Outcome], str | None] | None = None) -> Outcome:
    """Give ``o`` its verdict (unless it already hung or raised)."""
    if o.verdict:
        return o
    if o.code == 2:
        o.verdict, o.detail = _judge_error(o)
    elif o.code == 0:
        problem = check_ok(o) if check_ok else None
        o.verdict, o.detail = ("nonsense", problem) if problem else ("ok", "")
    else:
        o.verdict, o.detail = "nonsense", f"exit code {o.code} (expected 0 or 2)"
    return o


def _judge_error(o: Outcome) -> tuple[str, str]:
    lines = [x for x in o.stderr.splitlines() if x.strip()]
    many = o.argv[:1] == ["sweep"]  # a sweep reports each failed cell on its own line
    if not lines or (len(lines) > 1 and not many) or not all(x.startswith("memwall: error: ") for x in lines):
        return "nonsense", "an error must be one line starting 'memwall: error: '"
    message = lines[0][len("memwall: error: ") :]
    if "Traceback" in message or len(message) > 2000:
        return "nonsense", "the error message is a dump, not a sentence"
    for name, content in o.files.items():
        first = content.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        if len(first) >= 24 and first in message:
            return "nonsense", f"the error echoes the first line of {name}"
    return "error", message


# -- checks of a successful answer -----------------------------------------------------------------
def _numbers(value: Any, path: str = "") -> list[tuple[str, float]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [(path, float(value))]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _numbers(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _numbers(v, f"{path}[{i}]")]
    return []


def finite_non_negative(doc: Any) -> str | None:
    for path, x in _numbers(doc):
        if not math.isfinite(x):
            return f"{path} is {x}"
        if x < 0:
            return f"{path} is negative ({x})"
    return None


def check_run_json(o: Outcome) -> str | None:
    """``memwall run --json``: finite, non-negative figures; tokens conserved; something ran."""
    try:
        s = json.loads(o.stdout)
    except ValueError:
        return "stdout is not the JSON summary"
    if "error" in s:
        return "a summary with an error exited 0"
    if (problem := finite_non_negative(s)) is not None:
        return problem
    if s["requests"] < 1 or s["tokens"] < 1 or s["iterations"] < 1:
        return f"exit 0 but nothing ran (requests {s['requests']}, tokens {s['tokens']})"
    if s["requests_finished"] > s["requests"]:
        return "more requests finished than arrived"
    if s["tokens"] < s["requests_finished"]:
        return "fewer tokens than finished requests"
    if abs(sum(s["stall_breakdown"].values()) - 1) > 1e-6:
        return "the critical-path shares do not add up to 1"
    if s["bound_violations"]:
        return f"{s['bound_violations']} ops beat their physical bound"
    return None


def check_json(o: Outcome) -> str | None:
    try:
        doc = json.loads(o.stdout)
    except ValueError:
        return "stdout is not JSON"
    if doc in ([], {}):
        return "an empty answer with exit 0"
    return finite_non_negative(doc)


def check_text(o: Outcome) -> str | None:
    return None if o.stdout.strip() else "exit 0 with no output"


def check_sweep(out: Path) -> Callable[[Outcome], str | None]:
    def check(o: Outcome) -> str | None:
        results = out / "results.csv"
        if not results.is_file():
            return "no results.csv"
        rows = list(csv.DictReader(results.open()))
        if not rows:
            return "results.csv has no cells"
        for row in rows:
            if row.get("status") == "ok":
                for key in ("batch", "steps", "context"):
                    if row.get(key) not in (None, "") and float(row[key]) < 1:
                        return f"a cell ran with {key} = {row[key]}"
        return None

    return check


def check_report(out: Path) -> Callable[[Outcome], str | None]:
    def check(o: Outcome) -> str | None:
        return None if (out / "report.md").is_file() else "exit 0 without report.md"

    return check


# -- running one case --------------------------------------------------------------------------------
def materialise(base: Path, files: dict[str, bytes]) -> dict[str, Path]:
    """Write a case's files under ``base``; their paths by name."""
    paths = {}
    for name, content in files.items():
        p = base / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        paths[name] = p
    return paths


@dataclass
class Tally:
    """Outcomes by kind and verdict, and the bugs found (printed by the suite's summary)."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    bugs: list[Outcome] = field(default_factory=list)
    slowest: float = 0.0

    def add(self, o: Outcome) -> None:
        row = self.counts.setdefault(o.kind, dict.fromkeys(VERDICTS, 0))
        row[o.verdict] += 1
        self.slowest = max(self.slowest, o.seconds)
        if o.verdict in BUGS:
            self.bugs.append(o)

    def table(self) -> str:
        lines = [f"{'input kind':<18}{'cases':>7}" + "".join(f"{v:>11}" for v in VERDICTS)]
        total = dict.fromkeys(VERDICTS, 0)
        for kind in sorted(self.counts):
            row = self.counts[kind]
            for v in VERDICTS:
                total[v] += row[v]
            lines.append(f"{kind:<18}{sum(row.values()):>7}" + "".join(f"{row[v]:>11}" for v in VERDICTS))
        lines.append(f"{'all':<18}{sum(total.values()):>7}" + "".join(f"{total[v]:>11}" for v in VERDICTS))
        lines.append(f"slowest case {self.slowest:.2f} s")
        return "\n".join(lines)
