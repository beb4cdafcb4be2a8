"""Broadcasts: send (normal or emergency), approve, cancel, move (reschedule), list (emergencies
too) and read one.

Every function takes the caller: the role's right (`access.require`) and the area scope
(`require_targets_in_scope`, `broadcast_filter`, `visible_broadcast`) are checked here, for
the API and the panel alike. Writes queue their stations' dispatch in the caller's
transaction (services/dispatch.py); the caller commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from controller.core.permissions import (
    Action,
    broadcast_filter,
    communes_in_scope,
    require_targets_in_scope,
    visible_broadcast,
)
from controller.db.models import Broadcast, Delivery, Device, User
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.statuses import DeviceKind
from controller.schemas.broadcasts import BroadcastOut
from controller.services import approval, broadcast_status, broadcasts, emergency, policy
from controller.services.broadcasts import BroadcastCreate, Created, Moved
from controller.usecases.access import require


def send(session: Session, user: User, req: BroadcastCreate) -> Created:
    """A normal or priority bulletin: airs, or waits as a draft for an approver (policy, rights)."""
    require(user, Action.BROADCAST_SEND)
    # a commune operator: own commune only
    require_targets_in_scope(session, user, req.targets, DeviceKind.SPEAKER)
    return broadcasts.create(session, req, user.id, user=user)


async def send_emergency(
    deps: emergency.EmergencyDeps, session: Session, user: User, req: BroadcastCreate
) -> emergency.Started:
    """The group fan-out (docs/emergency.md); emergency.start checks the emergency right."""
    require_targets_in_scope(session, user, req.targets, DeviceKind.SPEAKER)
    return await emergency.start(deps, session, req, user)


def approve(session: Session, user: User, broadcast_id: int) -> list[int]:
    """Draft -> on air; approval.approve_broadcast checks the right for every target commune."""
    return approval.approve_broadcast(session, broadcast_id, user)


def require_may_cancel(session: Session, user: User, broadcast_id: int) -> bool:
    """Only what the caller could have sent may be cancelled; True when it is an emergency."""
    bc = session.get(Broadcast, broadcast_id)
    if bc is not None:
        require_targets_in_scope(session, user, bc.targets or {}, DeviceKind.SPEAKER)
    return session.get(EmergencyBroadcast, broadcast_id) is not None


def cancel(session: Session, user: User, broadcast_id: int) -> list[int]:
    """A normal broadcast (an emergency: `cancel_emergency`)."""
    require(user, Action.BROADCAST_SEND)
    require_may_cancel(session, user, broadcast_id)
    return broadcasts.cancel(session, broadcast_id, user.id)


async def cancel_emergency(
    deps: emergency.EmergencyDeps, session: Session, user: User, broadcast_id: int
) -> None:
    """Withdraws the PLAY on every group topic (emergency.stop); the same scope rule as `cancel`."""
    require_may_cancel(session, user, broadcast_id)
    await emergency.stop(deps, session, broadcast_id, user)


def reschedule(
    session: Session, user: User, broadcast_id: int, new_start: datetime, *,
    override_reason: str | None = None, now: datetime | None = None, tz: ZoneInfo = policy.TZ,
) -> Moved:
    """Move a one-off broadcast not started yet to `new_start` (PATCH /api/v1/broadcasts/{id} and
    the panel's calendar alike). The right to send; another area's broadcast is not found (404,
    as GET); one the caller sees but could not have sent (it reaches beyond their area) is a 403
    naming the area, as for cancel. Then services/broadcasts.reschedule: what may not move (409),
    the policy at the new time, approval, the stations' dispatch. The caller commits."""
    require(user, Action.BROADCAST_SEND)
    bc: Broadcast = visible_broadcast(session, user, broadcast_id)
    require_targets_in_scope(session, user, bc.targets or {}, DeviceKind.SPEAKER)
    return broadcasts.reschedule(session, bc, new_start, user, override_reason=override_reason, now=now,
                                 tz=tz)


def visible(session: Session, user: User, limit: int) -> list[Broadcast]:
    """Newest first: those reaching a station in the caller's area, and the caller's own."""
    q = (select(Broadcast).where(*broadcast_filter(session, user)).order_by(Broadcast.start_at.desc())
         .limit(min(limit, 1000)))  # fmt: skip
    return list(session.scalars(q))


def get(session: Session, user: User, broadcast_id: int) -> Broadcast:
    """The broadcast if it reaches the caller's area (or they sent it); otherwise 404."""
    bc: Broadcast = visible_broadcast(session, user, broadcast_id)
    return bc


def detail(session: Session, user: User, broadcast_id: int) -> dict[str, Any]:
    """GET /broadcasts/{id}: the broadcast with its deliveries, each station's state, the counts
    and the start skew, over the stations in the caller's area only. A commune operator reading a
    province-wide broadcast sees their commune's stations, never the names, states or lateness
    of another commune's (the broadcast itself they may see: it reaches them)."""
    bc = get(session, user, broadcast_id)
    communes = communes_in_scope(session, user)
    q = select(Delivery).where(Delivery.broadcast_id == bc.id).order_by(Delivery.device_id)
    if communes is not None:
        q = q.join(Device, Device.id == Delivery.device_id).where(Device.commune_id.in_(communes or {-1}))
    body = BroadcastOut.body(bc, list(session.scalars(q)))
    extra = broadcast_status.summary(session, bc, communes)
    if extra is None:
        extra = {"emergency": None, **broadcast_status.stations_part(session, bc, communes)}
    return body | extra


def visible_emergencies(session: Session, user: User, limit: int) -> list[Row[Any]]:
    """Newest first, (id, title, start_at, emergency status) of the emergencies the caller
    sees: the same rule as `visible` and `get`."""
    q = (select(Broadcast.id, Broadcast.title, Broadcast.start_at, EmergencyBroadcast.status)
         .join(EmergencyBroadcast, EmergencyBroadcast.broadcast_id == Broadcast.id)
         .where(*broadcast_filter(session, user))
         .order_by(Broadcast.id.desc()).limit(min(limit, 1000)))  # fmt: skip
    return list(session.execute(q))
