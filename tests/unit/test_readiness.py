"""`Event.ready_at` on a speaker station (docs/protocol.md, "Events"): the instant it could have
sounded the item, with its deliberate waits (decode `prepare_ahead_s`, relay `relay_lead_s`
before the start) taken off, so the emergency lead learnt from it does not grow with the lead."""

from __future__ import annotations

from datetime import UTC

import pytest

from device_agents.speaker.role import _Readiness


class StepClock:
    """A clock whose sleeps jump straight to their instant (plus `overshoot`, a late wake-up)."""

    def __init__(self, now: float, overshoot: float = 0.0) -> None:
        self.now, self.overshoot = now, overshoot

    def time(self) -> float:
        return self.now

    async def sleep_until(self, unix_ts: float) -> None:
        self.now = max(self.now, unix_ts + self.overshoot)


async def test_the_relay_switched_on_later_on_purpose_counts_when_it_could_have_been() -> None:
    clock = StepClock(1000.0, overshoot=0.004)
    ready = _Readiness(clock)  # type: ignore[arg-type]
    await ready.wait_until(1000.0 - 120)  # decode 120 s ahead: already past, no wait
    clock.now += 0.030  # decoding took 30 ms
    start = 1005.0  # a 5 s lead: the relay waits until 1.5 s before the start
    await ready.wait_until(start - 1.5)
    clock.now += 0.020  # switching the relay took 20 ms
    ready.relay_on()
    ready.relay_on()  # a second call changes nothing
    # Ready when decoded and switched: 1000.050 (the 3.470 s waited on purpose taken off; the
    # 4 ms the wake-up overshot, as a busy station would, count against it).
    at = ready.ready_at()
    assert at is not None and at.tzinfo is UTC and at.timestamp() == pytest.approx(1000.054, abs=1e-5)


async def test_no_wait_when_the_lead_is_short_and_nothing_before_the_relay() -> None:
    clock = StepClock(2000.0)
    ready = _Readiness(clock)  # type: ignore[arg-type]
    assert ready.ready_at() is None  # not ready until the relay is on
    await ready.wait_until(2000.8 - 1.5)  # a 0.8 s lead: the relay goes on at once
    clock.now += 0.010
    ready.relay_on()
    at = ready.ready_at()
    assert at is not None and at.timestamp() == pytest.approx(2000.010, abs=1e-5)
