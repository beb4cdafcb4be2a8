"""LED-board content: operator messages (and emergency mirrors) and which boards got them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.statuses import LedMessageStatus, LedSource
from controller.db.types import UTCDateTime


class LedMessageRow(Base):
    __tablename__ = "led_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16), default="hold")
    speed: Mapped[int] = mapped_column(Integer, default=3)
    color: Mapped[str] = mapped_column(String(16), default="amber")
    duration_s: Mapped[int] = mapped_column(Integer, default=10)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Recurring text (docs/led.md): the same RFC 5545 rules as audio schedules, in local wall
    # time; each occurrence is shown for `show_s` seconds. NULL rrule: one window start_at..end_at.
    rrule: Mapped[str | None] = mapped_column(Text)
    dtstart: Mapped[str | None] = mapped_column(String(32))
    until: Mapped[str | None] = mapped_column(String(32))
    exdates: Mapped[list[str] | None] = mapped_column(JSON)
    timezone: Mapped[str | None] = mapped_column(String(64))
    show_s: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[LedSource] = mapped_column(String(16), default=LedSource.OPERATOR)
    status: Mapped[LedMessageStatus] = mapped_column(String(16), default=LedMessageStatus.ACTIVE)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LedDelivery(Base):
    __tablename__ = "led_deliveries"
    __table_args__ = (UniqueConstraint("led_message_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    led_message_id: Mapped[int] = mapped_column(ForeignKey("led_messages.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    item_id: Mapped[str] = mapped_column(String(128))
