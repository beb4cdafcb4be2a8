"""Enrollment: one-time codes a technician types on the Pi, and failed tries per address."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.types import UTCDateTime


class EnrollmentCode(Base):
    """Only an HMAC of the code is stored: a database leak does not enroll anything."""

    __tablename__ = "enrollment_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_from: Mapped[str | None] = mapped_column(String(64))
    # Set when a newer code was issued for the device, or the device was retired.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EnrollmentFailure(Base):
    """A wrong code from an address; enough of them in a window and the address waits."""

    __tablename__ = "enrollment_failures"
    __table_args__ = (Index("ix_enrollment_failures_source_at", "source", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
