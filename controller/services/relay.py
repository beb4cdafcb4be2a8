"""Relays of a radio stream (e.g. VOV1) for a window, with dead-air fallback (docs/live.md).

Stations fetch the source themselves, so only allow-listed sources are accepted
(COMMUNECAST_RELAY_SOURCES): a station never fetches a URL an operator typed unchecked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import communes_in_scope, communes_of_broadcasts
from controller.db.models import Media, User
from controller.db.models_live import LiveStream
from controller.db.statuses import LiveStatus, StreamFallback, StreamKind
from controller.schemas.live import RelayCreate
from controller.services import audit, broadcasts, live
from protocol.messages import Priority

NOW_LEAD = timedelta(seconds=3)  # as bulletins: every station switches over together
MAX_WINDOW = timedelta(hours=24)


def source_allowed(url: str, allowed: list[str]) -> bool:
    """An exact allow-list entry, or under an entry that ends in "/" (no host-prefix tricks)."""
    if not url.startswith(("http://", "https://")) or any(c in url for c in "\r\n\t "):
        return False
    return any(url == a or (a.endswith("/") and url.startswith(a)) for a in allowed)


def create(
    session: Session, req: RelayCreate, user: User, *, allowed: list[str], now: datetime | None = None
) -> tuple[LiveStream, list[int]]:
    now = now or datetime.now(UTC)
    if not source_allowed(req.source_url, allowed):
        raise UserError(422, "relay.source_not_allowed", url=req.source_url[:200])
    if req.priority.rank >= Priority.NORMAL.rank:
        raise UserError(422, "relay.bad_priority")
    start_at = req.start_at.astimezone(UTC) if req.start_at else now + NOW_LEAD
    end_at = req.end_at.astimezone(UTC)
    if end_at <= now:
        raise UserError(422, "relay.in_past", end_at=end_at.isoformat())
    if end_at <= start_at or end_at - start_at > MAX_WINDOW:
        raise UserError(422, "relay.bad_window", start_at=start_at.isoformat(), end_at=end_at.isoformat(),
                        hours=int(MAX_WINDOW.total_seconds() // 3600))  # fmt: skip
    if req.fallback == StreamFallback.FILLER and not req.filler:
        raise UserError(422, "relay.filler_missing")
    known = set(session.scalars(select(Media.sha256).where(Media.sha256.in_(req.filler))))
    for sha in req.filler:
        if sha not in known:
            raise NotFound("media.not_found", sha256=sha)
    return live.create_stream(
        session, kind=StreamKind.RELAY, title=req.title, targets=req.targets, priority=req.priority,
        start_at=start_at, end_at=end_at, user=user, source_url=req.source_url, fmt=req.format,
        fallback=req.fallback, filler=req.filler, dead_air_s=req.dead_air_s,
        override_reason=req.override_reason,
    )  # fmt: skip


def cancel(session: Session, relay_id: int, user: User | None, *, now: datetime | None = None) -> list[int]:
    """Stop it early (or drop its draft): the stations' desired state drops it and they stop at once.
    Only its creator or a sender whose area covers all its stations may (live.require_may_manage)."""
    ls = live.managed_stream(session, relay_id, StreamKind.RELAY, user)
    user_id = user.id if user else None
    if ls.status in (LiveStatus.ACTIVE, LiveStatus.DRAFT):
        ls.status, ls.ended_at = LiveStatus.ENDED, now or datetime.now(UTC)
    audit.record(session, user_id, "relay.cancel", "broadcast", ls.broadcast_id)
    return broadcasts.cancel(session, ls.broadcast_id, user_id)


def list_relays(session: Session, user: User | None = None, limit: int = 100) -> list[LiveStream]:
    """The latest relays; with `user`, only those they may manage (the cancel rule)."""
    q = (select(LiveStream).where(LiveStream.kind == StreamKind.RELAY)
         .order_by(LiveStream.start_at.desc()).limit(limit))
    rows = list(session.scalars(q))
    scope = communes_in_scope(session, user) if user is not None else None
    if user is None or scope is None:
        return rows
    reached = communes_of_broadcasts(session, [ls.broadcast_id for ls in rows])
    return [ls for ls in rows if ls.created_by == user.id or reached[ls.broadcast_id] <= scope]
