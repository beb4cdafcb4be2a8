"""Operations: remote diagnostics sent to stations, agent update bundles and their rollouts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.statuses import DiagnosticState, RolloutState
from controller.db.types import UTCDateTime


class DiagnosticCommandRow(Base):
    """One signed diagnostic; its id is the envelope id the station's result refers to."""

    __tablename__ = "diagnostic_commands"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[DiagnosticState] = mapped_column(String(16), default=DiagnosticState.PENDING)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UpdateBundle(Base):
    """A release: the wheel (stored by SHA-256) and its manifest signed with the controller key."""

    __tablename__ = "update_bundles"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(40), unique=True)
    wheel_name: Mapped[str] = mapped_column(String(200))
    wheel_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    min_agent_version: Mapped[str] = mapped_column(String(40))
    manifest: Mapped[str] = mapped_column(Text)  # the exact signed bytes
    signature: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"kid", "sig"}
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UpdateRollout(Base):
    """One station's progress with one release: sent -> applied | rolled_back | refused."""

    __tablename__ = "update_rollouts"
    __table_args__ = (UniqueConstraint("bundle_id", "device_id", name="uq_update_rollouts_bundle_device"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("update_bundles.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    command_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[RolloutState] = mapped_column(String(16), default=RolloutState.SENT)
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
