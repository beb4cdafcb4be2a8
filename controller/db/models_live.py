"""Streamed broadcasts (docs/live.md): live voice from the panel and relays of a radio stream.

Each row pairs with a `broadcasts` row (status BroadcastStatus.STREAM), so deliveries, acks and the
play log work as for any bulletin; this table holds what only a stream has.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controller.db.models import Base, Broadcast, utcnow
from controller.db.statuses import LiveStatus, StreamFallback, StreamKind
from controller.db.types import UTCDateTime


class LiveStream(Base):
    __tablename__ = "live_streams"

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[StreamKind] = mapped_column(String(8))
    # Live: the capability in the stations' stream URL (it travels only in signed items).
    token: Mapped[str | None] = mapped_column(String(64))
    source_url: Mapped[str | None] = mapped_column(String(2000))  # relay: an allow-listed source
    format: Mapped[str | None] = mapped_column(String(16))
    fallback: Mapped[StreamFallback] = mapped_column(String(8), default=StreamFallback.SILENCE)
    filler: Mapped[list[str]] = mapped_column(JSON, default=list)  # media sha256
    dead_air_s: Mapped[float] = mapped_column(Float, default=10.0)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    status: Mapped[LiveStatus] = mapped_column(String(12), default=LiveStatus.ACTIVE)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    broadcast: Mapped[Broadcast] = relationship()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "broadcast_id": self.broadcast_id, "kind": self.kind,
            "title": self.broadcast.title, "priority": self.broadcast.priority,
            "source_url": self.source_url, "format": self.format, "fallback": self.fallback,
            "filler": list(self.filler or []), "dead_air_s": self.dead_air_s,
            "start_at": self.start_at.isoformat(), "end_at": self.end_at.isoformat(),
            "status": self.status, "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }  # fmt: skip
