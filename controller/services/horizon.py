"""What a station's horizon is made of: the sources the desired-state builder asks.

Each feature (one-off broadcasts, recurring schedules, live and relayed streams, LED
content, emergency volume) offers a plain function; the application composes them into
one `HorizonSources` (controller/horizon_sources.py) and hands it to the builder. So the
builder knows no feature, and a new kind of content is one more function in that list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from controller.db.models import Device
from protocol.messages import LedContent, ScheduleItem


class ItemSource(Protocol):
    """Items (sorted by start) for some of `devices` within `now .. now + horizon`."""

    def __call__(
        self, session: Session, devices: list[Device], *, now: datetime, horizon: timedelta
    ) -> dict[int, list[ScheduleItem]]: ...


class ItemAdjuster(Protocol):
    """Changes the gathered items in place (e.g. emergency items carry the emergency volume)."""

    def __call__(self, session: Session, items: dict[int, list[ScheduleItem]]) -> None: ...


class LedSource(Protocol):
    """The LED content of each LED board among `device_ids` (speakers are left out)."""

    def __call__(self, session: Session, device_ids: list[int], now: datetime) -> dict[int, LedContent]: ...


@dataclass(frozen=True)
class HorizonSources:
    """The registered sources, asked in order; items of all sources are merged by start. An item
    id a source already gave is not taken again: the sources read one after another, not in one
    snapshot (an emergency's Delivery rows may be committed between two of them)."""

    items: Sequence[ItemSource] = ()
    adjusters: Sequence[ItemAdjuster] = ()
    led: LedSource | None = None

    def gather(
        self, session: Session, devices: list[Device], *, now: datetime, horizon: timedelta
    ) -> dict[int, list[ScheduleItem]]:
        items: dict[int, list[ScheduleItem]] = {d.id: [] for d in devices}
        for source in self.items:
            for device_id, found in source(session, devices, now=now, horizon=horizon).items():
                have = {i.item_id for i in items[device_id]}
                fresh = [i for i in found if i.item_id not in have]
                items[device_id] = sorted(items[device_id] + fresh, key=lambda i: i.start_at)
        for adjust in self.adjusters:
            adjust(session, items)
        return items

    def led_content(self, session: Session, device_ids: list[int], now: datetime) -> dict[int, LedContent]:
        return {} if self.led is None else self.led(session, device_ids, now)
