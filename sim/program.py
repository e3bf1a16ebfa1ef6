"""The memwall process: the console script's entry, which owns the exit code.

It imports the command line inside its own guard, so Ctrl-C at any moment after the interpreter
starts ends with one line and exit 130, never a traceback. After an interrupt it leaves with
``os._exit``: CPython remembers an interrupt that once passed through code it ran with ``PyRun_*``
or ``eval`` (some standard-library imports do) and, at a normal exit, kills the process with SIGINT
instead of returning 130. Nothing is lost by skipping interpreter shutdown: outputs are written
atomically and their ``finally`` blocks have run by then; the standard streams are flushed first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import NoReturn

EXIT_INTERRUPTED = 130  # the shell convention: 128 + SIGINT


def run() -> NoReturn:
    """Run ``memwall`` with the process's arguments and exit with its code."""
    code: int | None = None
    try:
        try:
            from sim.cli import main

            code = main()
        finally:
            _ignore_interrupts()
    except KeyboardInterrupt:  # during the imports, or just as main() returned
        _ignore_interrupts()
        if code is None:
            print("memwall: interrupted", file=sys.stderr)
            code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def _ignore_interrupts() -> None:
    """From here on Ctrl-C is ignored: the command's work is done or abandoned, and what is left is
    shutdown. (CPython resets a Python-level SIGINT handler to the default action while it shuts
    down, so a late Ctrl-C would otherwise kill the process with a signal after a clean finish; it
    leaves an ignored signal ignored.)"""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
