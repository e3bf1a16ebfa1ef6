"""memwall: a discrete-event simulator of LLM-inference hardware on SimPy.

Time is integer picoseconds throughout; see :mod:`sim.core.units`.
"""

__version__ = "0.1.0"
