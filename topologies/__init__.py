"""Data package ``sim.topologies``: the system and topology files shipped with memwall (see README.md).

These TOML files live at the top of the repository and install inside the ``sim`` package
(``setup.cfg`` maps them); :func:`sim.shipped.shipped_dir` finds them either way.
"""
