"""The media library: where a recording is still used, who sees it, what expiry means.

A recording may be deleted only when nothing still to come uses it: a scheduled or draft
broadcast that has not finished, a draft or active schedule (emergency repeats are schedules)
or a live relay's filler. Past plays keep their play-log rows; the file is what goes.
Expiry does not delete anything by itself: an expired recording can no longer be put in a
new broadcast or schedule (`check_usable`), and the library shows it as expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.db.models import Broadcast, Media, User
from controller.db.models_live import LiveStream
from controller.db.models_schedules import Schedule
from controller.db.statuses import BroadcastStatus, LiveStatus, ScheduleStatus


@dataclass(frozen=True)
class Use:
    kind: str  # broadcast | schedule | stream
    id: int
    title: str

    def body(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id, "title": self.title}


class InUse(UserError):
    """409: the recording is still used; the reply lists where (`where`)."""

    def __init__(self, name: str, uses: list[Use]) -> None:
        listed = "; ".join(f"{u.title} (#{u.id})" for u in uses[:10])
        super().__init__(409, "media.in_use", name=name, uses=listed)
        self.uses = uses

    def details(self) -> dict[str, object]:
        return {"where": [u.body() for u in self.uses]}


def usage_map(session: Session, now: datetime | None = None) -> dict[str, list[Use]]:
    """Every recording something still to come plays, with what (one pass for a whole page)."""
    now = now or datetime.now(UTC)
    found: dict[str, list[Use]] = {}

    def add(shas: list[str] | None, use: Use) -> None:
        for sha in dict.fromkeys(shas or []):
            found.setdefault(sha, []).append(use)

    for b in session.scalars(select(Broadcast).where(
            Broadcast.status.in_([BroadcastStatus.SCHEDULED, BroadcastStatus.DRAFT]),
            Broadcast.start_at >= now - timedelta(days=1))):  # fmt: skip
        if b.start_at + timedelta(seconds=b.duration_s or 0) > now:
            add(b.media, Use("broadcast", b.id, b.title))
    for sc in session.scalars(select(Schedule).where(
            Schedule.status.in_([ScheduleStatus.DRAFT, ScheduleStatus.ACTIVE]))):
        add(sc.media, Use("schedule", sc.id, sc.title))
    for ls in session.scalars(select(LiveStream).where(
            LiveStream.status.in_([LiveStatus.DRAFT, LiveStatus.ACTIVE]), LiveStream.end_at > now)):
        add(ls.filler, Use("stream", ls.id, ls.broadcast.title))
    return found


def usage(session: Session, sha256: str, now: datetime | None = None) -> list[Use]:
    """What still to come plays this recording (empty: it may be deleted)."""
    return usage_map(session, now).get(sha256, [])


def check_usable(rows: list[Media], now: datetime | None = None) -> None:
    """422 for a recording past its expiry, named, when a new broadcast or schedule wants it."""
    now = now or datetime.now(UTC)
    for m in rows:
        if m.expires_at is not None and m.expires_at <= now:
            raise UserError(422, "media.expired", name=display_name(m))


def display_name(m: Media) -> str:
    return m.title or m.original_name


def visible_filter(uploaders_in_scope: list[int] | None, user: User) -> ColumnElement[bool] | None:
    """Who sees what: unscoped users everything; a scoped user what they or someone of their
    area uploaded, and the generated chimes (origin asset) everyone shares."""
    if uploaders_in_scope is None:
        return None
    return or_(Media.created_by.in_(uploaders_in_scope or [-1]), Media.created_by == user.id,
               Media.origin == "asset")
