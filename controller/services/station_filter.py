"""Which stations a list shows: the panel's stations page, its CSV export and the API's export
(`usecases/stations.py export_csv`) filter with the same conditions, so they cannot differ."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from controller.db.models import AreaGroupMember, Device
from controller.db.models_health import Alarm
from controller.db.statuses import AlarmState, DeviceKind

STATES = ("online", "offline", "playing", "alarm")


def playing():  # type: ignore[no-untyped-def]
    """Reported 'playing' (item id or null) from the station's retained state, on both backends."""
    return Device.reported["playing"].as_string()


def active(scope: set[int] | None) -> list[Any]:
    """Stations not retired, in the scope's communes (None: all)."""
    cond: list[Any] = [Device.retired_at.is_(None)]
    if scope is not None:
        cond.append(Device.commune_id.in_(scope or {-1}))
    return cond


def station_filter(q: str, commune_id: int | None, state: str, kind: str,
                   scope: set[int] | None, group_id: int | None = None) -> list[Any]:  # fmt: skip
    cond = active(scope)
    if group_id:  # a group of communes (docs/areas.md): its member communes
        members = select(AreaGroupMember.commune_id).where(AreaGroupMember.group_id == group_id)
        cond.append(Device.commune_id.in_(members))
    if state == "alarm":  # an alarm not resolved yet (open or acknowledged)
        alarmed = select(Alarm.device_id).where(Alarm.state != AlarmState.RESOLVED)
        cond.append(Device.id.in_(alarmed))
    if q:
        like = f"%{q.strip().lower()}%"
        cond.append(or_(func.lower(Device.name).like(like), func.lower(Device.uid).like(like)))
    if commune_id:
        cond.append(Device.commune_id == commune_id)
    if kind in tuple(DeviceKind):
        cond.append(Device.kind == kind)
    if state == "online":
        cond.append(Device.online.is_(True))
    elif state == "offline":
        cond.append(Device.online.is_(False))
    elif state == "playing":
        cond += [Device.online.is_(True), playing().is_not(None), playing() != ""]
    return cond
