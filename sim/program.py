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
import sys
from typing import NoReturn

EXIT_INTERRUPTED = 130  # the shell convention: 128 + SIGINT


def run() -> NoReturn:
    """Run ``memwall`` with the process's arguments and exit with its code."""
    try:
        from sim.cli import main

        code = main()
    except KeyboardInterrupt:  # during the imports above; main() reports its own
        print("memwall: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)
