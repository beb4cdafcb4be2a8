"""On air: what file items, stream items and the test tone share on a speaker station.

Going on air is always the same sequence: the amplifier relay on, the horn taken (a higher
priority preempts the holder), the item moved pending → playing exactly once by the
store's compare-and-set, and, while it sounds, a place to write why it was stopped. A file
bulletin (speaker/role.py), a live or relayed stream (speaker/stream.py) and the test tone
(speaker/diagnostics.py) all go through here, so the rules cannot drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from device_agents.common.store import AgentStore
from device_agents.hardware.audio import AudioOutput
from device_agents.host.events import EventLog
from device_agents.speaker.horn import Horn
from device_agents.speaker.relay import AmplifierRelay
from protocol.messages import EventKind, ScheduleItem


class HornBusy(Exception):
    """The horn did not come free in time for something unscheduled."""


class OnAir:
    def __init__(
        self,
        *,
        relay: AmplifierRelay,
        horn: Horn,
        audio: AudioOutput,
        store: AgentStore,
        events: EventLog,
        cancel: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self.relay = relay
        self.horn = horn
        self._audio = audio
        self._store = store
        self._events = events
        self._cancel = cancel  # (item_id, why): the role stops or unschedules a preempted item
        self._why: dict[str, str | None] = {}  # item_id on air -> why it was stopped (None: it was not)

    # -- what is on air ------------------------------------------------------------------------------
    def is_on(self, item_id: str) -> bool:
        return item_id in self._why

    def stopped(self, item_id: str) -> str | None:
        """Why the item on air was stopped; None while nobody stopped it."""
        return self._why.get(item_id)

    async def stop(self, item_id: str, why: str) -> bool:
        """Stop the item if it is on air (its play ends and reports `why`); False if it is not."""
        if item_id not in self._why:
            return False
        self._why[item_id] = why
        await self._audio.stop()
        return True

    def cancel_all_except(self, keep: set[str]) -> None:
        """A new desired state: what is on air and no longer listed stops, as 'cancelled'."""
        for item_id in list(self._why):
            if item_id not in keep:
                self._why[item_id] = "cancelled"
                asyncio.get_running_loop().create_task(self._audio.stop())

    # -- going on air --------------------------------------------------------------------------------
    @asynccontextmanager
    async def scheduled(self, item: ScheduleItem, *, missed: Callable[[], str | None],
                        relay_on: Callable[[], None] | None = None) -> AsyncIterator[bool]:
        """Relay, horn and pending → playing for a scheduled item; yields whether it may play.

        `missed` is asked once the horn is ours: a reason means the moment passed (reported
        `missed`). False is also yielded when the item was already played or cancelled:
        never twice. `relay_on` is called as soon as the amplifier relay is on for it (the
        item's readiness, `Event.ready_at`)."""
        async with self.relay.held():
            if relay_on is not None:
                relay_on()
            await self._claim(item)
            reason = missed()
            if reason is not None:
                self.finish(item, EventKind.MISSED, "missed", reason=reason)
                await self.horn.release(item)
                yield False
                return
            if not self._store.transition(item.item_id, "playing", expect="pending"):
                await self.horn.release(item)
                yield False
                return
            self._why[item.item_id] = None
            try:
                yield True
            finally:
                self._why.pop(item.item_id, None)
                await self.horn.release(item)

    @asynccontextmanager
    async def borrowed(self, item: ScheduleItem, *, wait_s: float) -> AsyncIterator[None]:
        """Relay and horn for something that is not scheduled (the test tone): no store state,
        and the horn only if it is free within `wait_s` (HornBusy otherwise)."""
        async with self.relay.held():
            try:
                await asyncio.wait_for(self.horn.acquire(item), wait_s)
            except TimeoutError:
                raise HornBusy(item.item_id) from None
            self._why[item.item_id] = None
            try:
                yield
            finally:
                self._why.pop(item.item_id, None)
                await self.horn.release(item)

    async def hand_over(self, item: ScheduleItem) -> None:
        """Give the horn to whoever preempted `item` and wait to get it back (a paused stream).

        A stop that comes meanwhile is kept: read `stopped` afterwards."""
        self._why[item.item_id] = None
        await self.horn.release(item)
        await self._claim(item)

    async def _claim(self, item: ScheduleItem) -> None:
        victim = await self.horn.acquire(item)
        if victim is not None:
            await self._cancel(victim.item_id, f"preempted by {item.item_id}")

    # -- the outcome ---------------------------------------------------------------------------------
    def finish(
        self,
        item: ScheduleItem,
        kind: EventKind,
        outcome: str,
        *,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        expect: str | None = None,
    ) -> bool:
        """The item's final state and its event, in one store transaction, and only once.

        From `pending` when it never went on air (missed, failed to fetch), from `playing` when it
        was on air (in this life, or — `expect="playing"` — in the one a restart cut short). An
        item already done keeps its outcome and sends no second event (before, any finish moved
        the item to done, so a late "missed" could overwrite "played")."""
        if expect is None:
            expect = "playing" if item.item_id in self._why else "pending"
        event = self._events.build(kind, item_id=item.item_id, broadcast_id=item.broadcast_id,
                                   reason=reason, detail=detail or {})
        done = self._store.transition(item.item_id, "done", outcome, event=event, expect=expect)
        if done:
            self._events.stored()
        return done
