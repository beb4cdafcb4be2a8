"""Every CAP 1.2 alert received (docs/cap.md): what it said, what we did with it.

One row per (sender, identifier): CAP makes that pair unique, so the same alert posted
twice finds its row and creates nothing new. `thread_id` is the id of the first alert of an
Alert -> Update -> Cancel chain, so an Update or Cancel finds the broadcast to replace or
stop even when it names an earlier update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.statuses import CapOutcome
from controller.db.types import UTCDateTime


class CapAlertRecord(Base):
    __tablename__ = "cap_alerts"
    __table_args__ = (UniqueConstraint("sender", "identifier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sender: Mapped[str] = mapped_column(String(255))
    identifier: Mapped[str] = mapped_column(String(255))
    sent: Mapped[str] = mapped_column(String(40))  # as written (references quote it)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))  # Actual|Exercise|System|Test|Draft
    msg_type: Mapped[str] = mapped_column(String(16))  # Alert|Update|Cancel|Ack|Error
    scope: Mapped[str] = mapped_column(String(16))
    references: Mapped[list[str]] = mapped_column(JSON, default=list)  # "sender,identifier,sent"
    thread_id: Mapped[int | None] = mapped_column(Integer, index=True)
    language: Mapped[str | None] = mapped_column(String(35))
    event: Mapped[str | None] = mapped_column(Text)
    headline: Mapped[str | None] = mapped_column(Text)
    urgency: Mapped[str | None] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(16))
    certainty: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[str | None] = mapped_column(String(16))  # ours, from the documented table
    raw_xml: Mapped[str] = mapped_column(Text)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id"), index=True)
    outcome: Mapped[CapOutcome] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    received_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
