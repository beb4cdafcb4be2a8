"""Relays of a radio stream (e.g. VOV1) for a window, with dead-air fallback (docs/live.md).

Stations fetch the source themselves, so only allow-listed sources are accepted
(COMMUNECAST_RELAY_SOURCES): a station never fetches a URL an operator typed unchecked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import broadcast_filter, require_targets_in_scope
from controller.db.models import Broadcast, Media, User
from controller.db.models_live import LiveStream
from controller.services import audit, broadcasts, live
from controller.services.targets import Targets
from protocol.messages import Priority

NOW_LEAD = timedelta(seconds=3)  # as bulletins: every station switches over together
MAX_WINDOW = timedelta(hours=24)


class RelayCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="Tiếp sóng", min_length=1, max_length=300)
    source_url: str = Field(min_length=8, max_length=2000)
    format: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,16}$")  # ffmpeg -f hint, e.g. mp3
    targets: Targets
    start_at: AwareDatetime | None = None  # None: now
    end_at: AwareDatetime
    priority: Priority = Priority.RELAY
    fallback: Literal["silence", "filler"] = "silence"
    filler: list[str] = Field(default_factory=list, max_length=20)  # media sha256, played in dead air
    dead_air_s: float = Field(default=10.0, ge=1, le=600)


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
    if req.fallback == "filler" and not req.filler:
        raise UserError(422, "relay.filler_missing")
    known = set(session.scalars(select(Media.sha256).where(Media.sha256.in_(req.filler))))
    for sha in req.filler:
        if sha not in known:
            raise NotFound("media.not_found", sha256=sha)
    return live.create_stream(
        session, kind="relay", title=req.title, targets=req.targets, priority=req.priority,
        start_at=start_at, end_at=end_at, user=user, source_url=req.source_url, fmt=req.format,
        fallback=req.fallback, filler=req.filler, dead_air_s=req.dead_air_s,
    )  # fmt: skip


def cancel(
    session: Session,
    relay_id: int,
    user_id: int | None,
    *,
    now: datetime | None = None,
    actor: User | None = None,
) -> list[int]:
    """Stop it early: the stations' desired state drops it and they stop at once. With `actor`,
    only a relay they could have started (its targets inside their area; 403 otherwise)."""
    ls = live.get_stream(session, relay_id, "relay")
    if actor is not None:
        require_targets_in_scope(session, actor, ls.broadcast.targets or {}, "speaker")
    if ls.status == "active":
        ls.status, ls.ended_at = "ended", now or datetime.now(UTC)
    audit.record(session, user_id, "relay.cancel", "broadcast", ls.broadcast_id)
    return broadcasts.cancel(session, ls.broadcast_id, user_id)


def list_relays(session: Session, limit: int = 100, user: User | None = None) -> list[LiveStream]:
    """Newest first; with `user`, only relays whose broadcast reaches their area (or that they made)."""
    scope = [] if user is None else broadcast_filter(session, user)
    q = (
        select(LiveStream)
        .join(Broadcast, Broadcast.id == LiveStream.broadcast_id)
        .where(LiveStream.kind == "relay", *scope)
        .order_by(LiveStream.start_at.desc())
        .limit(limit)
    )
    return list(session.scalars(q))
