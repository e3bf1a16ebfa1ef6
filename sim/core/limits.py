"""Documented limits on input sizes: beyond them an input is refused with a clear error, not run.

Each limit is far above any real use and far below what would exhaust memory or time (or overflow
the 64-bit integers the DRAM model and numpy use). They are constants, not state; the README lists
them. A reader or parameter that checks one names the limit in its message.
"""

from __future__ import annotations

MAX_SIM_PS = 2**62
"""Simulated time (ps) a run may reach: ~53 days; int64 arithmetic stays exact below it."""

MAX_BATCH = 1_000_000
"""Requests in one fixed decode batch or one iteration."""

MAX_REQUESTS = 10_000_000
"""Requests read from one trace."""

MAX_TOKENS = 10_000_000
"""Tokens of one request's prompt, output or context."""

MAX_STEPS = 10_000_000
"""Decode steps of a fixed-batch run."""

MAX_LAYERS = 10_000
"""Decoder layers of a model."""

MAX_CHIPS = 65_536
"""Chips of a system, terminals of a network."""

MAX_ROUTERS = 65_536
"""Routers of a generated or loaded topology."""

MAX_LINE_BYTES = 1 << 20
"""Bytes in one line of a text input (CSV, JSON lines): longer lines are refused, not read on."""

MAX_FILE_BYTES = 1 << 30
"""Bytes of a whole-file text input (TOML, JSON) read into memory."""

MAX_SWEEP_CELLS = 100_000
"""Cells of one sweep."""

MAX_SWEEP_POINTS = 10_000
"""Points of a --sweep range (offered loads of memwall noc)."""

MAX_LATENCY_CYCLES = 10**9
"""Cycles of one router, link or NIC latency (timing wheels are sized by it)."""

MAX_TIMELINE_OPS = 100_000_000
"""Ops one timeline may hold (--timeline-ops): ~50 GB of JSON, far past what a viewer opens."""
