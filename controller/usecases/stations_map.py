"""Where the stations are: the map's markers and moving a station, for the panel (and any API).

Both check the caller here, so a page and an endpoint cannot differ: markers are only the
stations of the caller's area (another commune's positions never leave the server), and
only a role that manages stations (technician, admin) may move one, inside its own area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.core.permissions import Action, communes_in_scope, device_for_action
from controller.db.models import Area, Device, User
from controller.db.models_health import Alarm
from controller.services import audit
from controller.usecases.access import require

MAX_MARKERS = 5000  # a province's whole fleet; clustering keeps the browser fast at this size


class MarkerState(StrEnum):
    """The colour of a marker: an open alarm wins over online/offline (it needs someone)."""

    ONLINE = "online"
    OFFLINE = "offline"
    ALARM = "alarm"


@dataclass(frozen=True)
class Marker:
    id: int
    name: str
    lat: float
    lon: float
    state: MarkerState
    commune_id: int
    commune: str

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "lat": self.lat,
            "lon": self.lon,
            "state": self.state.value,
            "commune_id": self.commune_id,
            "commune": self.commune,
            "href": f"/stations/{self.id}",
        }


def markers(session: Session, user: User, *, commune_id: int | None = None) -> list[Marker]:
    """The caller's stations that have a position, optionally of one commune.

    A commune outside the caller's area gives an empty list, not an error: the filter is a
    view of what they may see, and saying "exists but not yours" would leak the commune."""
    require(user, Action.VIEW)
    scope = communes_in_scope(session, user)
    cond = [Device.retired_at.is_(None), Device.lat.is_not(None), Device.lon.is_not(None)]
    if scope is not None:
        cond.append(Device.commune_id.in_(scope or {-1}))
    if commune_id is not None:
        cond.append(Device.commune_id == commune_id)
    rows = session.execute(
        select(Device.id, Device.name, Device.lat, Device.lon, Device.online, Device.commune_id, Area.name)
        .join(Area, Area.id == Device.commune_id)
        .where(*cond)
        .order_by(Device.id)
        .limit(MAX_MARKERS)
    ).all()
    alarmed = (
        set(
            session.scalars(
                select(Alarm.device_id).where(
                    Alarm.resolved_at.is_(None), Alarm.device_id.in_([r[0] for r in rows])
                )
            )
        )
        if rows
        else set()
    )
    out = []
    for i, name, lat, lon, online, cid, cname in rows:
        state = MarkerState.ALARM if i in alarmed else MarkerState.ONLINE if online else MarkerState.OFFLINE
        out.append(Marker(i, name, float(lat), float(lon), state, cid, cname))
    return out


def valid_position(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180


def set_position(session: Session, user: User, device_id: int, lat: float, lon: float) -> Device:
    """Move a station (a technician on site, or picked on the map): `device.manage` in its area.

    404 for a station that does not exist, 403 outside the caller's area (the same answers as
    the API's other station writes), 422 for a position that is not on Earth."""
    require(user, Action.DEVICE_MANAGE)
    device = device_for_action(session, user, Action.DEVICE_MANAGE, device_id)
    if not valid_position(lat, lon):
        raise UserError(422, "device.position_invalid")
    before = (device.lat, device.lon)
    device.lat, device.lon = round(lat, 6), round(lon, 6)
    audit.record(
        session,
        user.id,
        "device.position",
        "device",
        device.id,
        lat=device.lat,
        lon=device.lon,
        before=list(before),
    )
    return device
