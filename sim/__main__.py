"""``python -m sim``: the ``memwall`` command, guarded against Ctrl-C from the first import on."""

from sim.program import run

run()
