"""Reconnect delays: exponential backoff with full jitter, and a cap.

Why jitter: when a broker restarts, every station loses its connection in the same
millisecond. With a fixed ladder (0.2, 0.4, 0.8 … s) they all come back in the same
millisecond too, and keep doing so at every step: at 10,000 stations that is a connection
storm aimed at the broker (and, once they are in, at the controller's ingest). "Full jitter"
(a delay drawn uniformly from 0 up to the exponential ceiling) spreads each step over its
whole window, so the reconnect rate is the fleet size divided by the window instead of the
whole fleet at once (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

MAX_DOUBLINGS = 30  # 2**30 × any sane base is past any cap; keeps the float finite


@dataclass
class Backoff:
    """The delay before each retry: uniform in [0, min(cap_s, base_s × 2^attempt)].

    `reset()` after a connection that worked, so the next loss starts small again."""

    base_s: float
    cap_s: float
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError(f"backoff needs 0 < base ({self.base_s}) <= cap ({self.cap_s})")

    def ceiling(self) -> float:
        """The upper end of the next delay's window."""
        return min(self.cap_s, self.base_s * 2 ** min(self.attempt, MAX_DOUBLINGS))

    def next_delay(self) -> float:
        delay = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
