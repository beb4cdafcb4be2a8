"""Full-jitter reconnect backoff (mqtt_adapter/backoff.py): what stations and the controller
wait before each retry after losing the broker."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mqtt_adapter import Backoff


def test_delays_stay_inside_a_window_that_doubles_up_to_the_cap() -> None:
    b = Backoff(base_s=1.0, cap_s=30.0, rng=random.Random(7))
    ceilings = []
    for _ in range(8):
        ceiling = b.ceiling()
        assert 0.0 <= b.next_delay() <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    b.reset()
    assert b.ceiling() == 1.0


def test_a_fleet_losing_the_broker_together_does_not_retry_together() -> None:
    """10,000 stations drawing their first delay: spread evenly over the window, no 100 ms
    slice holding more than a small share (a fixed ladder put all of them in one instant)."""
    rng = random.Random(2026)
    firsts = [Backoff(base_s=1.0, cap_s=30.0, rng=rng).next_delay() for _ in range(10_000)]
    per_slice = Counter(int(d * 10) for d in firsts)
    assert len(per_slice) == 10
    assert max(per_slice.values()) < 1_200  # 10 % expected in each tenth of a second


def test_a_very_long_outage_keeps_the_cap_and_a_finite_delay() -> None:
    b = Backoff(base_s=0.5, cap_s=10.0, attempt=10_000)
    assert b.ceiling() == 10.0 and 0.0 <= b.next_delay() <= 10.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 5.0)])
def test_nonsense_settings_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(base_s=base, cap_s=cap)
