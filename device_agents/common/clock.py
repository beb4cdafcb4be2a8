"""Wall-clock helpers shared by agents.

Stations in one commune must start a broadcast at the same instant, so waits are
aimed at an absolute unix time (NTP-synchronised wall clock), not at a delay.

A `Clock` is injectable so a test can run a week of schedules in a minute: the agent
and the simulated speaker read the time and sleep only through their clock. The real
wall clock is the default everywhere.
"""

from __future__ import annotations

import asyncio
import time

_COARSE_MARGIN_S = 0.030
_FINE_STEP_S = 0.002


class Clock:
    """The real wall clock (unix seconds), with absolute-instant sleeps."""

    speed = 1.0  # virtual seconds per real second

    def time(self) -> float:
        return time.time()

    async def sleep_until(self, unix_ts: float) -> None:
        """Sleep until ``time() >= unix_ts`` with an error of a few milliseconds.

        asyncio.sleep alone can overshoot by a scheduler tick, so the last ~30 ms are
        covered with short sleeps that re-read the clock (which also follows NTP steps).
        """
        while True:
            remaining = unix_ts - self.time()
            if remaining <= 0:
                return
            if remaining > _COARSE_MARGIN_S:
                await asyncio.sleep(remaining - _COARSE_MARGIN_S)
            else:
                await asyncio.sleep(min(remaining, _FINE_STEP_S))

    async def sleep_until_or_event(self, unix_ts: float, event: asyncio.Event) -> bool:
        """Like sleep_until, but return early (True) when ``event`` is set."""
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep_until(unix_ts))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                task.cancel()
            await asyncio.gather(waiter, sleeper, return_exceptions=True)
        return event.is_set()


class AcceleratedClock(Clock):
    """Virtual time that starts at ``start`` (default: now) and runs ``speed`` times faster.

    For tests only: 3600.0 means one virtual hour per real second. Sleeps are real
    sleeps of (virtual remaining / speed), so asyncio timing jitter of a few ms real is
    multiplied by ``speed`` in virtual time; tolerances must be scaled accordingly.
    """

    def __init__(self, speed: float, start: float | None = None, *, running: bool = True) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._real0: float | None = time.time() if running else None
        self._virtual0 = time.time() if start is None else start

    def run(self) -> None:
        """Let a paused clock run from its start instant (a test sets up while it is paused)."""
        self._real0 = time.time()

    @property
    def running(self) -> bool:
        return self._real0 is not None

    def time(self) -> float:
        if self._real0 is None:
            return self._virtual0
        return self._virtual0 + (time.time() - self._real0) * self.speed

    async def sleep_until(self, unix_ts: float) -> None:
        while True:
            remaining = unix_ts - self.time()
            if remaining <= 0:
                return
            # While paused, poll: the real wait is unknown until the clock runs.
            delay = remaining / self.speed if self._real0 is not None else 0.05
            await asyncio.sleep(max(delay, 0.0005))


REAL_CLOCK = Clock()


async def sleep_until(unix_ts: float) -> None:
    """Sleep until the real wall clock reaches ``unix_ts`` (see Clock.sleep_until)."""
    await REAL_CLOCK.sleep_until(unix_ts)


async def sleep_until_or_event(unix_ts: float, event: asyncio.Event) -> bool:
    """Like sleep_until, but return early when ``event`` is set.

    Returns True when the event ended the wait, so a scheduled start can be
    cancelled (preempted) while it is still pending.
    """
    return await REAL_CLOCK.sleep_until_or_event(unix_ts, event)
