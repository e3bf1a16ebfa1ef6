"""Data package ``sim.traces``: the sample request and decode traces shipped with memwall (see README.md).

These files live at the top of the repository and install inside the ``sim`` package (``setup.cfg``
maps them); :func:`sim.shipped.shipped_dir` finds them either way.
"""
