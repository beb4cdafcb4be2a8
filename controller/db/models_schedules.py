"""Recurring schedules and per-commune broadcast policy (docs/schedules.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controller.core.config import DEFAULT_TIMEZONE
from controller.db.models import Base, utcnow
from controller.db.statuses import ScheduleStatus
from controller.db.types import UTCDateTime


class Schedule(Base):
    """An RFC 5545 rule in local wall time; occurrences are expanded, never stored.

    `dtstart`, `until` and `exdates` are naive local ISO-8601 strings in `timezone`, as
    the operator typed them: a 05:30 bulletin stays at 05:30 whatever the UTC offset does.
    """

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    media: Mapped[list[str]] = mapped_column(JSON)  # playlist of media sha256
    duration_s: Mapped[float] = mapped_column(Float)
    rrule: Mapped[str] = mapped_column(Text)
    dtstart: Mapped[str] = mapped_column(String(32))
    until: Mapped[str | None] = mapped_column(String(32))
    exdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    status: Mapped[ScheduleStatus] = mapped_column(String(16), default=ScheduleStatus.DRAFT, index=True)
    override_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CommunePolicy(Base):
    """When loudspeakers of one commune may sound (Hà Nội 2021-style limits)."""

    __tablename__ = "commune_policies"

    commune_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True)
    allowed_hours: Mapped[list[list[str]]] = mapped_column(JSON, default=list)  # [["05:00","21:00"]]
    days: Mapped[list[int]] = mapped_column(JSON, default=list)  # ISO weekdays 1=Mon..7=Sun; [] = all
    max_minutes_per_session: Mapped[int | None] = mapped_column(Integer)
    max_minutes_per_day: Mapped[int | None] = mapped_column(Integer)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
