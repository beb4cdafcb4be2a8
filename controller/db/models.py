"""The controller's tables (SQLAlchemy 2 typed ORM). Migrations live in controller/migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from controller.db.statuses import AreaLevel, BroadcastStatus, DeliveryState, DeviceKind, PlayStatus
from controller.db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Area(Base):
    """Administrative units (docs/areas.md): province > commune (xã, phường, đặc khu) > village,
    and groups of communes (level `group`, parent the province; members in `area_group_members`).

    `code` is the official code (communes: the 2025 code, e.g. "8869"; provinces: "25"), unique
    per level; `former_names` the units this one replaced ("Thị trấn Hợp Hòa (Huyện Tam Dương,
    Tỉnh Vĩnh Phúc)"), searchable like the name."""

    __tablename__ = "areas"
    __table_args__ = (UniqueConstraint("level", "code", name="uq_areas_level_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    level: Mapped[AreaLevel] = mapped_column(String(16))
    kind: Mapped[str | None] = mapped_column(String(16))  # CommuneKind for communes
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(32))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    former_names: Mapped[list[str]] = mapped_column(JSON, default=list)

    parent: Mapped[Area | None] = relationship(remote_side="Area.id")


class AreaGroupMember(Base):
    """A commune in a group of communes (a commune may be in several groups)."""

    __tablename__ = "area_group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True)
    commune_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True,
                                            index=True)


class Device(Base):
    __tablename__ = "devices"
    # An emergency counts its stations per commune from this index alone (migration 0032).
    __table_args__ = (Index("ix_devices_commune_kind_retired", "commune_id", "kind", "retired_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)  # MQTT identity and topic segment
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[DeviceKind] = mapped_column(String(16))
    commune_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))  # indexed in __table_args__
    # The village (thôn, tổ dân phố, bản, ấp) inside its commune, when known (issue 19).
    village_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(200))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reported: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    desired_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    commune: Mapped[Area] = relationship(foreign_keys=[commune_id])


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32), default="viewer")
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """Bearer tokens are random; only their SHA-256 is stored, so a DB leak grants nothing."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class Media(Base):
    """Content-addressed audio: the key is the SHA-256 of the stored (transcoded) file."""

    __tablename__ = "media"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    original_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    codec: Mapped[str] = mapped_column(String(32))
    source_sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Audio pipeline (docs/audio.md, migration 0002_audio): loudness of the stored file
    # measured independently after normalization, the upload's own loudness, and the
    # warnings (message keys + params) the operator saw.
    loudness_lufs: Mapped[float | None] = mapped_column(Float)
    true_peak_dbtp: Mapped[float | None] = mapped_column(Float)
    source_loudness_lufs: Mapped[float | None] = mapped_column(Float)
    normalization: Mapped[str | None] = mapped_column(String(16))
    warnings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    origin: Mapped[str | None] = mapped_column(String(16))  # upload | tts | asset
    # Media library (migration 0025_media_library): the name people see, tags, and a date after
    # which it may not be used in a new broadcast or schedule (controller/services/media_library.py).
    title: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Broadcast(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    media: Mapped[list[str]] = mapped_column(JSON)  # playlist of media sha256
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    start_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    duration_s: Mapped[float] = mapped_column(Float)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[BroadcastStatus] = mapped_column(String(16), default=BroadcastStatus.SCHEDULED)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="broadcast")


class Delivery(Base):
    """One broadcast on one station: what the controller sent and whether it was acked."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("broadcast_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    item_id: Mapped[str] = mapped_column(String(128), index=True)
    state: Mapped[DeliveryState] = mapped_column(String(16), default=DeliveryState.PENDING)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The station was ready to sound it (audio decoded, relay on; `Event.ready_at` of its
    # play_started): what the emergency lead is learnt from (migration 0030_ready).
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    detail: Mapped[str | None] = mapped_column(Text)

    broadcast: Mapped[Broadcast] = relationship(back_populates="deliveries")


class PlayLog(Base):
    """What really played where (proof of play), one row per station and item."""

    __tablename__ = "play_log"
    __table_args__ = (UniqueConstraint("device_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id"), index=True)
    item_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[PlayStatus] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    start_error_ms: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeviceEvent(Base):
    """Every event a station sent, stored once by its id (QoS 1 may deliver twice)."""

    __tablename__ = "device_events"
    __table_args__ = (Index("ix_device_events_device_ts", "device_id", "ts"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    kind: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ref: Mapped[str | None] = mapped_column(String(64))
    item_id: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
