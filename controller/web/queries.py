"""Read-side queries behind the panel pages, written to stay fast at 10,000+ stations.

Counts are computed in the database (GROUP BY), lists are paginated with LIMIT/OFFSET
over an indexed order, and the map is binned on a grid so the page never carries more
than a few thousand points whatever the fleet size. Writes go through controller/services.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, Select, and_, case, cast, func, select
from sqlalchemy.orm import Session

from controller.core import permissions
from controller.db.models import Area, Broadcast, Delivery, Device, DeviceEvent, PlayLog, User
from controller.db.statuses import AreaLevel, BroadcastStatus
from controller.services import station_filter as station_filter_mod

PAGE_SIZE = 50
MAP_W, MAP_H = 640, 420
MAP_BINS = 48  # at most MAP_BINS x (MAP_BINS * h/w) dots on the map, whatever the fleet size


_playing = station_filter_mod.playing
_active = station_filter_mod.active


@dataclass
class CommuneCounts:
    commune_id: int
    name: str
    total: int = 0
    online: int = 0
    playing: int = 0

    @property
    def offline(self) -> int:
        return self.total - self.online


@dataclass
class Dashboard:
    total: int = 0
    online: int = 0
    playing: int = 0
    communes: list[CommuneCounts] = field(default_factory=list)

    @property
    def offline(self) -> int:
        return self.total - self.online

    def summary(self) -> dict[str, Any]:
        return {
            "total": self.total, "online": self.online, "offline": self.offline, "playing": self.playing,
            "communes": {c.commune_id: [c.total, c.online, c.playing] for c in self.communes},
        }  # fmt: skip


def dashboard(s: Session, scope: set[int] | None) -> Dashboard:
    online_i = case((Device.online.is_(True), 1), else_=0)
    playing_i = case((and_(Device.online.is_(True), _playing().is_not(None), _playing() != ""), 1), else_=0)
    rows = s.execute(
        select(Device.commune_id, func.count(), func.sum(online_i), func.sum(playing_i))
        .where(*_active(scope))
        .group_by(Device.commune_id)
    ).all()
    names = dict(s.execute(select(Area.id, Area.name).where(Area.id.in_([r[0] for r in rows]))).all())
    out = Dashboard()
    for commune_id, total, online, playing in rows:
        c = CommuneCounts(commune_id, names.get(commune_id, str(commune_id)), total, int(online or 0),
                          int(playing or 0))
        out.communes.append(c)
        out.total += c.total
        out.online += c.online
        out.playing += c.playing
    out.communes.sort(key=lambda c: c.name)
    return out


@dataclass
class MapDot:
    x: float
    y: float
    r: float
    total: int
    online: int
    label: str


def station_map(s: Session, scope: set[int] | None) -> tuple[list[MapDot], dict[str, float] | None]:
    """Stations with GPS on a plain equirectangular plot, binned on a grid (no map tiles)."""
    has_gps = [*_active(scope), Device.lat.is_not(None), Device.lon.is_not(None)]
    box = s.execute(
        select(func.min(Device.lat), func.max(Device.lat), func.min(Device.lon), func.max(Device.lon))
        .where(*has_gps)
    ).one()
    if box[0] is None:
        return [], None
    lat0, lat1, lon0, lon1 = (float(v) for v in box)
    # Keep the aspect right at this latitude and pad a little so edge dots are not clipped.
    kx = math.cos(math.radians((lat0 + lat1) / 2))
    span_x = max((lon1 - lon0) * kx, 1e-4)
    span_y = max(lat1 - lat0, 1e-4)
    pad = 18
    scale = min((MAP_W - 2 * pad) / span_x, (MAP_H - 2 * pad) / span_y)
    cell = max(span_x, span_y) / MAP_BINS
    # Grid cell per station (a cast, not floor(): SQLite may lack math functions).
    gx = cast((Device.lon - lon0) * kx / cell, Integer)
    gy = cast((Device.lat - lat0) / cell, Integer)
    online_i = case((Device.online.is_(True), 1), else_=0)
    rows = s.execute(
        select(gx, gy, func.count(), func.sum(online_i), func.min(Device.name),
               func.avg(Device.lon), func.avg(Device.lat))
        .where(*has_gps).group_by(gx, gy)
    ).all()
    dots = []
    for _x, _y, total, online, name, lon, lat in rows:
        x = pad + (float(lon) - lon0) * kx * scale
        y = MAP_H - pad - (float(lat) - lat0) * scale
        r = 6.0 if total == 1 else min(6.0 + 2 * math.log2(total), 16.0)
        dots.append(MapDot(round(x, 1), round(y, 1), round(r, 1), int(total), int(online or 0),
                           name if total == 1 else f"{total}"))
    return dots, {"lat0": lat0, "lat1": lat1, "lon0": lon0, "lon1": lon1}


@dataclass
class StationPage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


station_filter = station_filter_mod.station_filter


def stations(s: Session, *, q: str = "", commune_id: int | None = None, state: str = "", kind: str = "",
             page: int = 1, scope: set[int] | None = None, page_size: int = PAGE_SIZE,
             group_id: int | None = None) -> StationPage:
    cond = station_filter(q, commune_id, state, kind, scope, group_id)
    total = s.scalar(select(func.count()).select_from(Device).where(*cond)) or 0
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 1), pages)
    query: Select[Any] = (
        select(Device.id, Device.uid, Device.name, Device.kind, Device.online, Device.last_seen,
               _playing(), Area.name)
        .join(Area, Area.id == Device.commune_id)
        .where(*cond).order_by(Device.id).limit(page_size).offset((page - 1) * page_size)
    )
    rows = [
        {"id": i, "uid": uid, "name": name, "kind": kind_, "online": online, "last_seen": seen,
         "playing": playing or None, "commune": commune}
        for i, uid, name, kind_, online, seen, playing, commune in s.execute(query)
    ]  # fmt: skip
    return StationPage(rows, total, page, pages)


def communes(s: Session, scope: set[int] | None) -> list[tuple[int, str]]:
    """The communes of a picker, "Xã Tam Dương (8869)" with the official code (docs/areas.md);
    "Tỉnh Phú Thọ › Xã Tam Dương (8869)" when they lie in more than one province."""
    q = select(Area.id, Area.name, Area.code, Area.parent_id).where(Area.level == AreaLevel.COMMUNE)
    if scope is not None:
        q = q.where(Area.id.in_(scope or {-1}))
    rows = list(s.execute(q))
    parents = {p for *_, p in rows if p is not None}
    provinces: dict[int, str] = {}
    if len(parents) > 1:
        provinces = dict(s.execute(select(Area.id, Area.name).where(Area.id.in_(parents))).all())

    def label(name: str, code: str | None, parent: int | None) -> str:
        text = f"{name} ({code})" if code else name
        return f"{provinces[parent]} › {text}" if parent in provinces else text

    return sorted(((i, label(n, c, p)) for i, n, c, p in rows), key=lambda r: r[1])


def groups(s: Session, scope: set[int] | None) -> list[tuple[int, str]]:
    """The groups of communes (docs/areas.md) a user may target: those with members, all of them
    inside the user's scope."""
    from controller.db.models import AreaGroupMember

    members: dict[int, set[int]] = {}
    for group_id, commune_id in s.execute(select(AreaGroupMember.group_id, AreaGroupMember.commune_id)):
        members.setdefault(group_id, set()).add(commune_id)
    q = select(Area.id, Area.name).where(Area.level == AreaLevel.GROUP).order_by(Area.name)
    return [(i, n) for i, n in s.execute(q)
            if members.get(i) and (scope is None or members[i] <= scope)]  # fmt: skip


def recent_events(s: Session, device_id: int, limit: int = 30) -> list[DeviceEvent]:
    q = (select(DeviceEvent).where(DeviceEvent.device_id == device_id)
         .order_by(DeviceEvent.ts.desc()).limit(limit))
    return list(s.scalars(q))


def play_log(s: Session, *, device_id: int | None = None, broadcast_id: int | None = None,
             scope: set[int] | None = None, page: int = 1, page_size: int = PAGE_SIZE) -> StationPage:
    cond: list[Any] = []
    if device_id is not None:
        cond.append(PlayLog.device_id == device_id)
    if broadcast_id is not None:
        cond.append(PlayLog.broadcast_id == broadcast_id)
    if scope is not None:
        cond.append(Device.commune_id.in_(scope or {-1}))
    base = select(func.count()).select_from(PlayLog).join(Device, Device.id == PlayLog.device_id)
    total = s.scalar(base.where(*cond)) or 0
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 1), pages)
    q = (
        select(PlayLog, Device.name, Broadcast.title)
        .join(Device, Device.id == PlayLog.device_id)
        .outerjoin(Broadcast, Broadcast.id == PlayLog.broadcast_id)
        .where(*cond).order_by(PlayLog.id.desc()).limit(page_size).offset((page - 1) * page_size)
    )
    rows = [{"log": r, "device": d, "title": t} for r, d, t in s.execute(q)]
    _schedule_titles(s, rows)
    return StationPage(rows, total, page, pages)


def _schedule_titles(s: Session, rows: list[dict[str, Any]]) -> None:
    """A schedule occurrence (item id s{id}@...) has no broadcast: show its schedule's title."""
    from controller.db.models_schedules import Schedule
    from controller.services.recurrence import parse_item_id

    wanted = {r["log"].id: p[0] for r in rows if not r["title"] and (p := parse_item_id(r["log"].item_id))}
    if wanted:
        q = select(Schedule.id, Schedule.title).where(Schedule.id.in_(set(wanted.values())))
        titles = dict(s.execute(q).all())
        for r in rows:
            if r["log"].id in wanted:
                r["title"] = titles.get(wanted[r["log"].id])


def drafts(s: Session, scope: set[int] | None) -> list[dict[str, Any]]:
    """Broadcasts waiting for approval that touch the user's area, soonest first."""
    q = (
        select(Broadcast, func.count(Delivery.id), User.username)
        .join(Delivery, Delivery.broadcast_id == Broadcast.id)
        .join(Device, Device.id == Delivery.device_id)
        .outerjoin(User, User.id == Broadcast.created_by)
        .where(Broadcast.status == BroadcastStatus.DRAFT)
        .group_by(Broadcast.id, User.username)
        .order_by(Broadcast.start_at)
        .limit(200)
    )
    if scope is not None:
        q = q.where(Device.commune_id.in_(scope or {-1}))
    return [{"broadcast": b, "stations": n, "sender": who} for b, n, who in s.execute(q)]


# Ids of broadcasts with at least one station in these communes: one rule for the panel and the API.
broadcasts_in_scope = permissions.broadcasts_in_scope
