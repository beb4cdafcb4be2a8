"""Availability per station over a period: the share of the time it was not offline.

"Offline" is what the alarm engine already decided (controller/services/alarms: an `offline`
alarm opens after COMMUNECAST_ALARM_OFFLINE_AFTER_S of silence and resolves when the
station is heard again), so the report and the alarm list tell the same story. A station
counts from when it was created if that is later than the start of the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controller.db.models import Device
from controller.db.models_health import Alarm
from controller.services.reports import Filters

MAX_STATIONS = 200  # a bar per station: a commune's fleet, or the 200 least available of a province


@dataclass(frozen=True)
class Availability:
    device_id: int
    name: str
    percent: float


def per_station(session: Session, f: Filters, now: datetime) -> list[Availability]:
    """Least available first (the ones someone should visit); only stations of the filter's area."""
    start, end = f.start or now, min(f.end or now, now)
    cond = [Device.retired_at.is_(None), Device.created_at < end, *f.conditions()]
    stations = session.execute(select(Device.id, Device.name, Device.created_at).where(*cond)).all()
    if not stations or end <= start:
        return []
    offline = session.execute(
        select(Alarm.device_id, Alarm.opened_at, Alarm.resolved_at).where(
            Alarm.kind == "offline", Alarm.device_id.in_([d for d, _n, _c in stations]),
            Alarm.opened_at < end, or_(Alarm.resolved_at.is_(None), Alarm.resolved_at > start),
        )
    ).all()  # fmt: skip
    down: dict[int, float] = {}
    for device_id, opened, resolved in offline:
        lo, hi = max(opened, start), min(resolved or end, end)
        if hi > lo:
            down[device_id] = down.get(device_id, 0.0) + (hi - lo).total_seconds()
    out = []
    for device_id, name, created in stations:
        period = (end - max(start, created)).total_seconds()
        if period <= 0:
            continue
        percent = max(0.0, 100.0 * (1 - down.get(device_id, 0.0) / period))
        out.append(Availability(device_id, name, round(percent, 1)))
    return sorted(out, key=lambda a: (a.percent, a.name))[:MAX_STATIONS]
