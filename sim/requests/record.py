"""The inference request: what a serving system sees of one user call.

Times are integer picoseconds (memwall's time base), the first request of a trace at 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.core.errors import ConfigError
from sim.core.units import PS_PER_S


@dataclass(frozen=True, slots=True)
class Request:
    """One inference request.

    ``prompt_tokens`` >= 1 are prefilled; ``output_tokens`` >= 1 are generated, the first by the
    iteration that completes the prefill (so a request needs ``output_tokens - 1`` decode
    iterations). ``prefix_hash_ids[i]`` identifies prompt tokens ``[i*B, (i+1)*B)`` with
    ``B = prefix_block_tokens``; requests whose leading ids agree share that prefix's KV.
    """

    id: int
    arrival_ps: int
    prompt_tokens: int
    output_tokens: int
    prefix_hash_ids: tuple[int, ...] = ()
    prefix_block_tokens: int = 0

    def __post_init__(self) -> None:
        for name, low in (("id", 0), ("arrival_ps", 0), ("prompt_tokens", 1), ("output_tokens", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ConfigError(
                    f"expected a whole number >= {low}, found {value!r}", where=f"request {self.id}: {name}"
                )
        if self.prefix_hash_ids and self.prefix_block_tokens <= 0:
            raise ConfigError(
                "prefix_hash_ids given, so expected prefix_block_tokens >= 1, "
                f"found {self.prefix_block_tokens}",
                where=f"request {self.id}",
            )

    @property
    def arrival_s(self) -> float:
        return self.arrival_ps / PS_PER_S

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens
