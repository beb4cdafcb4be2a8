"""The provincial connector's durable outbox and its delivery state (docs/provincial.md).

Outbox rows are written in the same transaction as what they report (a play-log row
reaching a final status in ingest, a status snapshot), so a crash never loses one; a
row is deleted only after the province answered 2xx for the batch that carried it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.statuses import OutboxKind
from controller.db.types import UTCDateTime


class ProvincialOutbox(Base):
    __tablename__ = "provincial_outbox"
    __table_args__ = (Index("ix_provincial_outbox_kind_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[OutboxKind] = mapped_column(String(16))
    device_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # Sent in every record so the province can drop a record it already has.
    idempotency_key: Mapped[str] = mapped_column(String(200))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # canonical keys; mapped when sent
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class ProvincialState(Base):
    """One row (id 1): what every replica shows in GET /api/v1/provincial/status."""

    __tablename__ = "provincial_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error_key: Mapped[str | None] = mapped_column(String(64))
    last_error_detail: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    logins: Mapped[int] = mapped_column(Integer, default=0)
    delivered_status: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    delivered_play_log: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
