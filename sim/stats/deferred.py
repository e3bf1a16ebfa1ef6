"""Time-weighted level changes known in advance, replayed without events."""

from __future__ import annotations

from bisect import bisect_right

from sim.stats.kinds import Level


class DeferredLevel:
    """Changes of one time-weighted level that closed-form bookings know in advance.

    A transaction-level booking knows when a page will start and stop waiting, but no event fires
    then. The changes are kept as sortable keys and replayed into the :class:`Level`, each at its own
    timestamp and in time order, at finalize (or when many are pending), so the queue levels stay
    exact with zero events.
    """

    __slots__ = ("_keys", "_limit", "level")

    FLUSH_AT = 1 << 15

    def __init__(self, lvl: Level) -> None:
        self.level = lvl
        self._keys: list[int] = []  # 2*t for a decrement, 2*t+1 for an increment (-1 first on ties)
        self._limit = self.FLUSH_AT

    def wait(self, from_ps: int, to_ps: int, now_ps: int) -> None:
        """One job waits during ``[from_ps, to_ps)``; both are >= ``now_ps``."""
        if to_ps > from_ps:
            keys = self._keys
            keys.append(2 * from_ps + 1)
            keys.append(2 * to_ps)
            if len(keys) > self._limit:
                self.flush(now_ps)

    def flush(self, now_ps: int) -> None:
        """Apply every change due by ``now_ps``; later ones stay pending."""
        keys = self._keys
        if keys:
            keys.sort()
            cut = bisect_right(keys, 2 * now_ps + 1)
            add = self.level.add
            for k in keys[:cut]:
                add(1 if k & 1 else -1, k >> 1)
            del keys[:cut]
        # Amortise: sort again only once the pending list has doubled.
        self._limit = max(self.FLUSH_AT, 2 * len(keys))
