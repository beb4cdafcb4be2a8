"""Wall-clock helpers shared by agents.

Stations in one commune must start a broadcast at the same instant, so waits are
aimed at an absolute unix time (NTP-synchronised wall clock), not at a delay.
"""

from __future__ import annotations

import asyncio
import time

_COARSE_MARGIN_S = 0.030
_FINE_STEP_S = 0.002


async def sleep_until(unix_ts: float) -> None:
    """Sleep until ``time.time() >= unix_ts`` with an error of a few milliseconds.

    asyncio.sleep alone can overshoot by a scheduler tick, so the last ~30 ms are
    covered with short sleeps that re-read the clock (which also follows NTP steps).
    """
    while True:
        remaining = unix_ts - time.time()
        if remaining <= 0:
            return
        if remaining > _COARSE_MARGIN_S:
            await asyncio.sleep(remaining - _COARSE_MARGIN_S)
        else:
            await asyncio.sleep(min(remaining, _FINE_STEP_S))


async def sleep_until_or_event(unix_ts: float, event: asyncio.Event) -> bool:
    """Like sleep_until, but return early when ``event`` is set.

    Returns True when the event ended the wait, so a scheduled start can be
    cancelled (preempted) while it is still pending.
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(sleep_until(unix_ts))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, sleeper):
            task.cancel()
        await asyncio.gather(waiter, sleeper, return_exceptions=True)
    return event.is_set()
