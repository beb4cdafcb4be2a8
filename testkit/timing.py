"""Figures over lists of instants, shared by tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterable


def busiest_window(instants: Iterable[float], window_s: float) -> int:
    """The most instants inside any window_s-long window (e.g. reconnects in the busiest 100 ms)."""
    ordered = sorted(instants)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] > window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
