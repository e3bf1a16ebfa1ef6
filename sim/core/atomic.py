"""Outputs that are either whole or absent: a file or a result directory appears in one rename.

An interrupted or failed command (Ctrl-C, SIGKILL, a full disk) must never leave a half-written file
that another command would read as a result, and a result directory must never mix files of two
runs. Files are written to a temporary name in the same directory and renamed over the target;
a directory is filled under a hidden temporary name and swapped in whole.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sim.core.errors import ConfigError

RESULT_MARKERS = (("config.json", "summary.json"), ("noc.json",))
"""Files that show a directory holds memwall results (``run --out``, ``noc --out``), so a new run may
replace it: all the files of one of these sets."""


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on success it is synced and renamed over ``path``,
    on any failure or interruption removed. ``suffix`` keeps an extension a writer looks at (.gz)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}{suffix}")
    try:
        yield tmp
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and one rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return Path(path)


def check_result_dir(path: str | Path, flag: str = "--out") -> Path:
    """Refuse, before any work, a result directory that exists and holds anything but a previous
    memwall run (which the new run replaces whole), or that cannot be created."""
    d = Path(path)
    if d.exists():
        if not d.is_dir():
            raise ConfigError(f"expected a directory for the results, found a file at {d}", where=flag)
        entries = {p.name for p in d.iterdir()}
        if entries and not any(all(m in entries for m in marks) for marks in RESULT_MARKERS):
            raise ConfigError(
                f"{d} exists and does not hold a memwall run's results; choose a new or empty directory "
                "(a previous run's directory is replaced whole)",
                where=flag,
            )
    parent = d.resolve().parent
    if not parent.is_dir() and not _creatable(parent):
        raise ConfigError(f"cannot create {d}: its parent directory cannot be created", where=flag)
    return d


def _creatable(d: Path) -> bool:
    while not d.exists():
        d = d.parent
    return os.access(d, os.W_OK)


@contextmanager
def result_dir(path: str | Path, flag: str = "--out") -> Iterator[Path]:
    """A temporary directory to fill; on success it replaces ``path`` whole, on any failure or
    interruption it is removed and ``path`` is left as it was."""
    target = check_result_dir(path, flag)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {target.parent}: {exc.strerror}", where=flag) from None
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for child in tmp.iterdir():  # everything on disk before the swap
            with child.open("rb") as fh:
                os.fsync(fh.fileno())
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
