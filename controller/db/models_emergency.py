"""Emergency broadcasts (docs/emergency.md): what was sent on which group topics, when, by whom.

The Broadcast and its per-station Delivery rows stay the core truth (acks, play log); this
row adds what only an emergency has: the LED mirror and repeat schedule it owns (so cancel
can undo them), the group topics of its one-publish-per-group fan-out, the lead chosen for
the synchronized start, and the controller-side timings.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.statuses import EmergencyStatus
from controller.db.types import UTCDateTime


class EmergencyBroadcast(Base):
    __tablename__ = "emergency_broadcasts"

    broadcast_id: Mapped[int] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str | None] = mapped_column(Text)
    voice: Mapped[str | None] = mapped_column(String(32))
    repeat: Mapped[str | None] = mapped_column(Text)
    # Plain ids (no foreign key): those tables come from other migration branches.
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    led_message_id: Mapped[int | None] = mapped_column(Integer)
    volume: Mapped[int] = mapped_column(Integer, default=100)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    play_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # envelope ids of the PLAYs sent
    lead_ms: Mapped[float] = mapped_column(Float)
    lead_basis: Mapped[str] = mapped_column(String(200), default="default")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # request in the service -> the signed PLAYs handed to the broker connection
    publish_ms: Mapped[float | None] = mapped_column(Float)
    # request -> the broker's last PUBACK (Mosquitto answers once it has queued the PLAY for
    # every subscriber, so this grows with the fan-out: ~250 ms at 10,000 stations)
    broker_ack_ms: Mapped[float | None] = mapped_column(Float)
    # Bytes of stored audio carried inside the PLAY (docs/emergency.md, "Audio inside the PLAY");
    # None: all by reference. The next lead knows from it how big the PLAY it learnt from was.
    inline_bytes: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[EmergencyStatus] = mapped_column(String(16), default=EmergencyStatus.ACTIVE, index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
