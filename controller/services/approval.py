"""Content approval: nothing airs until someone with approval rights for its area says so.

Approval rights come from the permission matrix (`broadcast.approve`: admin, province,
approver) and the area check (the target communes lie inside the user's area). A
creator who holds that right for every target commune is approved on creation, and
the audit trail says it was automatic.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, can_act_on_area
from controller.db.models import Broadcast, Device, User
from controller.db.models_live import LiveStream
from controller.db.statuses import BroadcastStatus, LiveStatus
from controller.services import audit, dispatch


def can_approve(session: Session, user: User, commune_ids: Iterable[int]) -> bool:
    ids = list(commune_ids)
    return bool(ids) and all(can_act_on_area(session, user, Action.BROADCAST_APPROVE, c) for c in ids)


def require(session: Session, user: User, commune_ids: Iterable[int]) -> None:
    if not can_approve(session, user, commune_ids):
        raise UserError(403, "approval.forbidden")


def approve_broadcast(
    session: Session, broadcast_id: int, user: User, *, now: datetime | None = None
) -> list[int]:
    """Draft -> scheduled (airs). Returns the stations to re-publish."""
    bc = session.get(Broadcast, broadcast_id)
    if bc is None:
        raise NotFound("broadcast.not_found", id=broadcast_id)
    device_ids = [d.device_id for d in bc.deliveries]
    communes = {d.commune_id for d in _devices(session, device_ids)}
    require(session, user, communes)
    if bc.status == BroadcastStatus.SCHEDULED:
        dispatch.stations_changed(session, device_ids)
        return device_ids
    if bc.status != BroadcastStatus.DRAFT:
        raise UserError(409, "approval.not_draft", status=bc.status)
    stream = session.scalar(select(LiveStream).where(LiveStream.broadcast_id == bc.id))
    if stream is not None:
        _approve_stream(bc, stream, now or datetime.now(UTC))
    elif bc.start_at < (now or datetime.now(UTC)):
        raise UserError(422, "approval.start_passed", start_at=bc.start_at.isoformat())
    else:
        bc.status = BroadcastStatus.SCHEDULED
    audit.record(session, user.id, "broadcast.approve", "broadcast", bc.id, title=bc.title)
    audit.record(session, user.id, "broadcast.send", "broadcast", bc.id, stations=len(device_ids))
    dispatch.stations_changed(session, device_ids)
    return device_ids


def _approve_stream(bc: Broadcast, stream: LiveStream, now: datetime) -> None:
    """A drafted relay (services.live.create_stream): it airs for what is left of its window, so
    only a window already over is refused. Its broadcast becomes a stream again ("stream")."""
    if stream.end_at <= now:
        raise UserError(422, "relay.in_past", end_at=stream.end_at.isoformat())
    bc.status, stream.status = BroadcastStatus.STREAM, LiveStatus.ACTIVE


def _devices(session: Session, ids: list[int]) -> list[Device]:
    return list(session.scalars(select(Device).where(Device.id.in_(ids)))) if ids else []
