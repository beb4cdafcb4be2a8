"""Who has the loudspeaker right now: one item at a time, higher priority preempts."""

from __future__ import annotations

import asyncio

from protocol.messages import ScheduleItem


class Horn:
    def __init__(self) -> None:
        self._holder: ScheduleItem | None = None
        self._changed = asyncio.Condition()

    @property
    def current(self) -> ScheduleItem | None:
        return self._holder

    async def acquire(self, item: ScheduleItem) -> ScheduleItem | None:
        """Take the horn. Returns the item the caller must stop, if `item` outranks it.

        An item of equal or lower priority waits for the horn to be free.
        """
        async with self._changed:
            while self._holder is not None:
                if item.priority.rank > self._holder.priority.rank:
                    victim, self._holder = self._holder, item
                    return victim
                await self._changed.wait()
            self._holder = item
            return None

    async def release(self, item: ScheduleItem) -> None:
        async with self._changed:
            if self._holder is not None and self._holder.item_id == item.item_id:
                self._holder = None
            self._changed.notify_all()
