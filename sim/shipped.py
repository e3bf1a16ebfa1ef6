"""Where the data shipped with memwall lives: the system files (``topologies/``) and sample traces
(``traces/``).

In the repository they sit at the top level; an install (editable or not) ships them as the data
packages ``sim.topologies`` and ``sim.traces`` (see ``setup.cfg``), so they are found through the
import system wherever memwall runs from. Only a checkout used without installing falls back to
the folders beside the ``sim`` package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import sim

SHIPPED = ("topologies", "traces")


def shipped_dir(name: str) -> Path:
    """The folder of shipped data ``name`` (``"topologies"`` or ``"traces"``)."""
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped folder {name!r}; expected one of {', '.join(SHIPPED)}")
    try:
        return Path(str(files(f"sim.{name}")))
    except ModuleNotFoundError:  # a checkout on sys.path, not installed
        return Path(sim.__file__).resolve().parents[1] / name
