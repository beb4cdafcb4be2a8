"""Durable dispatch: which stations need their desired state re-published, and who does it.

`dispatch_queue` rows are written in the same transaction as the change that needs them
(or right after it), so a controller that dies loses no pending dispatch; the replica
holding the `dispatch_leases` row drains them (docs/scaling.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.types import UTCDateTime


class DispatchQueue(Base):
    __tablename__ = "dispatch_queue"

    # Append-only: a drain deletes exactly the rows it read, so a mark made meanwhile survives.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[int] = mapped_column(Integer, index=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DispatchLease(Base):
    __tablename__ = "dispatch_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    # Fencing token: bumped on every change of holder; a write checks it is still ours.
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
