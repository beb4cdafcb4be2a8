"""One-off broadcasts: validate, resolve targets, record deliveries; move one not started yet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.db.models import Broadcast, Delivery, Device, Media, User
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.statuses import PLANNED_BROADCAST, BroadcastStatus, DeliveryState, DeviceKind
from controller.i18n import formats
from controller.schemas.broadcasts import BroadcastCreate
from controller.services import approval, audit, dispatch, media_library, policy, recurrence
from controller.services.targets import resolve, stored
from protocol.messages import MediaRef, Priority, ScheduleItem

# "Now" means a shared instant a little ahead, so every station has fetched the audio
# and starts together (horns more than ~40 ms apart are heard as echo).
NOW_LEAD = timedelta(seconds=3)
PAST_TOLERANCE = timedelta(seconds=5)
# Items that ended longer ago than this are dropped from the horizon.
KEEP_PAST = timedelta(minutes=10)


# Priorities that may carry an LED mirror text and a repeat rule (docs/emergency.md).
FANOUT_PRIORITIES = (Priority.EMERGENCY, Priority.PRIORITY)


def check_emergency_fields(req: BroadcastCreate) -> None:
    """`text` and `repeat` belong to emergency (or priority) broadcasts: say so clearly."""
    used = [name for name in ("text", "repeat") if getattr(req, name) is not None]
    if used and req.priority not in FANOUT_PRIORITIES:
        names = ", ".join(f"\u201c{u}\u201d" for u in used)
        raise UserError(422, "emergency.fields_need_priority", fields=names, priority=req.priority.value)


@dataclass(frozen=True)
class Created:
    """What `create` did: the broadcast, the stations it reaches, and the policy check's outcome
    (for the answer: checked, override, exempt or unchecked)."""

    broadcast: Broadcast
    device_ids: list[int]
    policy: dict[str, object]


def item_id_for(broadcast_id: int) -> str:
    return f"b{broadcast_id}"


def create(
    session: Session, req: BroadcastCreate, user_id: int | None, *, now: datetime | None = None,
    user: User | None = None, draft: bool = False,
) -> Created:
    """Record the broadcast; with `user`, apply broadcast policy and approval (draft or airs).

    `draft`: kept for an approver whatever the rights (CAP's normal alerts); its stations are
    told nothing until it is approved."""
    now = now or datetime.now(UTC)
    check_emergency_fields(req)
    playlist = req.playlist()
    if not playlist:
        raise UserError(422, "request.invalid")
    media = {m.sha256: m for m in session.scalars(select(Media).where(Media.sha256.in_(playlist)))}
    for sha in playlist:
        if sha not in media:
            raise NotFound("media.not_found", sha256=sha)
    media_library.check_usable(list(media.values()), now)
    start_at = req.start_at.astimezone(UTC) if req.start_at else now + NOW_LEAD
    if start_at < now - PAST_TOLERANCE:
        raise UserError(422, "broadcast.in_past", start_at=start_at.isoformat())
    devices = resolve(session, req.targets, kind=DeviceKind.SPEAKER)
    if not devices:
        raise UserError(422, "broadcast.no_targets")
    duration_s = sum(media[s].duration_s for s in playlist)
    communes = sorted({d.commune_id for d in devices})
    outcome: dict[str, object] = {"status": "unchecked"}
    status = BroadcastStatus.SCHEDULED
    if user is not None:
        occurrence = recurrence.Occurrence(start_at, duration_s)
        outcome = policy.enforce(session, user, communes, [occurrence], req.priority, req.override_reason)
        status = (BroadcastStatus.SCHEDULED if approval.can_approve(session, user, communes)
                  else BroadcastStatus.DRAFT)
    bc = Broadcast(
        title=req.title,
        status=status,
        media=playlist,
        priority=req.priority.value,
        start_at=start_at,
        duration_s=duration_s,
        targets=stored(session, req.targets),
        created_by=user_id,
    )
    session.add(bc)
    session.flush()
    for d in devices:
        session.add(Delivery(broadcast_id=bc.id, device_id=d.id, item_id=item_id_for(bc.id)))
    audit.record(
        session, user_id, "broadcast.create", "broadcast", bc.id,
        title=req.title, targets=bc.targets, start_at=start_at.isoformat(),
        priority=req.priority.value, stations=len(devices), policy=outcome, status=status,
    )  # fmt: skip
    if outcome.get("status") == "override":
        audit.record(session, user_id, "policy.override", "broadcast", bc.id,
                     reason=req.override_reason, rule=outcome.get("rule"))
    if user is not None and status == BroadcastStatus.SCHEDULED:
        audit.record(session, user_id, "broadcast.approve", "broadcast", bc.id, automatic=True)
        audit.record(session, user_id, "broadcast.send", "broadcast", bc.id, stations=len(devices))
    if draft:
        bc.status = BroadcastStatus.DRAFT
    elif status == "scheduled":  # a draft tells no station anything until it is approved
        dispatch.stations_changed(session, [d.id for d in devices])
    return Created(bc, [d.id for d in devices], outcome)


def cancel(session: Session, broadcast_id: int, user_id: int | None) -> list[int]:
    bc = session.get(Broadcast, broadcast_id)
    if bc is None:
        raise NotFound("broadcast.not_found", id=broadcast_id)
    bc.status = BroadcastStatus.CANCELLED
    audit.record(session, user_id, "broadcast.cancel", "broadcast", bc.id)
    ids = [d.device_id for d in bc.deliveries]
    dispatch.stations_changed(session, ids)
    return ids


@dataclass(frozen=True)
class Moved:
    """What `reschedule` did: the broadcast at its new start, its stations (told again), the
    policy outcome at the new time, whether it airs (else a draft waiting for an approver) and
    the start it had before."""

    broadcast: Broadcast
    device_ids: list[int]
    policy: dict[str, object]
    approved: bool
    previous_start: datetime


def reschedule(
    session: Session, bc: Broadcast, new_start: datetime, user: User, *, override_reason: str | None = None,
    now: datetime | None = None, tz: ZoneInfo = policy.TZ,
) -> Moved:
    """Move a one-off broadcast that has not started yet to `new_start` (aware), on the same
    stations (its deliveries). Emergencies (and the group fan-out of priority ones), cancelled
    broadcasts, live streams and relays, and a broadcast already started are refused (409, saying
    why); a new start in the past is a 422. The new time goes through the create path's checks:
    the recording still usable, the communes' broadcast policy (its old time not counted against
    the day's minutes) with the same override rule, and content approval: a mover without the
    approval right for every commune leaves a draft for an approver, as `create` does. The
    stations are queued for their new desired state in the caller's transaction."""
    now = now or datetime.now(UTC)
    if Priority(bc.priority) is Priority.EMERGENCY or session.get(EmergencyBroadcast, bc.id) is not None:
        raise UserError(409, "broadcast.move_emergency", title=bc.title)
    if bc.status == BroadcastStatus.CANCELLED:
        raise UserError(409, "broadcast.move_cancelled", title=bc.title)
    if bc.status not in PLANNED_BROADCAST:  # a live voice or a relay (status "stream")
        raise UserError(409, "broadcast.move_not_one_off", title=bc.title)
    if bc.start_at <= now:
        raise UserError(409, "broadcast.move_started", title=bc.title, at=formats.time_date(bc.start_at, tz))
    new_start = new_start.astimezone(UTC)
    if new_start < now - PAST_TOLERANCE:
        raise UserError(422, "broadcast.move_past", at=formats.time_date(new_start, tz))
    media_library.check_usable(list(session.scalars(select(Media).where(Media.sha256.in_(bc.media)))), now)
    deliveries = list(bc.deliveries)
    ids = sorted(d.device_id for d in deliveries)
    communes = sorted(set(session.scalars(select(Device.commune_id).where(Device.id.in_(ids or [-1])))))
    occurrence = recurrence.Occurrence(new_start, bc.duration_s)
    outcome = policy.enforce(session, user, communes, [occurrence], Priority(bc.priority), override_reason,
                             exclude_broadcast=bc.id, tz=tz)  # fmt: skip
    approved = approval.can_approve(session, user, communes)
    previous, was = bc.start_at, bc.status
    bc.start_at = new_start
    bc.status = BroadcastStatus.SCHEDULED if approved else BroadcastStatus.DRAFT
    for d in deliveries:  # the stations hear of the new time in their next desired state
        d.state, d.sent_at, d.acked_at, d.ready_at, d.detail = DeliveryState.PENDING, None, None, None, None
    audit.record(session, user.id, "broadcast.reschedule", "broadcast", bc.id, title=bc.title,
                 previous_start_at=previous.isoformat(), start_at=new_start.isoformat(),
                 stations=len(ids), policy=outcome, status=bc.status)  # fmt: skip
    if outcome.get("status") == "override":
        audit.record(session, user.id, "policy.override", "broadcast", bc.id,
                     reason=override_reason, rule=outcome.get("rule"))
    if approved and was == BroadcastStatus.DRAFT:
        audit.record(session, user.id, "broadcast.approve", "broadcast", bc.id, automatic=True)
    dispatch.stations_changed(session, ids)  # also when now a draft: its item leaves their horizon
    return Moved(bc, ids, outcome, approved, previous)


def one_off_item(bc: Broadcast, item_id: str, media: dict[str, Media]) -> ScheduleItem:
    """A one-off broadcast as a station's desired state carries it (its audio by reference)."""
    return ScheduleItem(
        item_id=item_id, broadcast_id=bc.id, title=bc.title, start_at=bc.start_at,
        priority=Priority(bc.priority),
        media=[MediaRef(sha256=s, size=media[s].size, duration_s=media[s].duration_s) for s in bc.media],
    )


def horizon_items(
    session: Session, devices: list[Device], *, now: datetime, horizon: timedelta
) -> dict[int, list[ScheduleItem]]:
    """The one-off broadcasts of these stations in the horizon, sorted by start (a horizon
    source, controller/horizon_sources.py); marks each delivery sent the first time."""
    rows = session.execute(
        select(Delivery, Broadcast)
        .join(Broadcast, Delivery.broadcast_id == Broadcast.id)
        .where(
            Delivery.device_id.in_([d.id for d in devices]),
            Broadcast.status == BroadcastStatus.SCHEDULED,
            Broadcast.start_at >= now - timedelta(days=1),
            Broadcast.start_at <= now + horizon,
        )
        .order_by(Broadcast.start_at)
    ).all()
    shas = {sha for _, b in rows for sha in b.media}
    media = {m.sha256: m for m in session.scalars(select(Media).where(Media.sha256.in_(shas)))}
    items: dict[int, list[ScheduleItem]] = {}
    for delivery, bc in rows:
        if bc.start_at + timedelta(seconds=bc.duration_s) < now - KEEP_PAST:
            continue
        items.setdefault(delivery.device_id, []).append(one_off_item(bc, delivery.item_id, media))
        if delivery.sent_at is None:
            delivery.sent_at = now
    return items
