"""Named random streams derived from one master seed.

Each stream is keyed by a stable hash of its name, so adding a stream never shifts another's numbers
and the same seed always gives the same draws (byte-identical results).
"""

from __future__ import annotations

import hashlib

import numpy as np


class RandomStreams:
    """``streams["membench.addresses"]`` -> a numpy Generator owned by the simulation."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._streams: dict[str, np.random.Generator] = {}

    def __getitem__(self, name: str) -> np.random.Generator:
        gen = self._streams.get(name)
        if gen is None:
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
            gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, key])))
            self._streams[name] = gen
        return gen

    def names(self) -> list[str]:
        return sorted(self._streams)
