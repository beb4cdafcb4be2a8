"""Station health (docs/health.md): telemetry samples, their 5-minute rollups, and alarms.

Raw samples are kept briefly (48 h by default) and rolled up into min/avg/max per
5-minute bucket (kept 90 days), so a year of a thousand stations stays small.
`Alarm.active_key` is "<device_id>:<kind>" while the alarm is open or acknowledged and
NULL once resolved: a unique index on it makes "one active alarm per station and kind"
true on SQLite and PostgreSQL alike, even with several controller replicas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.statuses import AlarmState
from controller.db.types import UTCDateTime

BIGINT = BigInteger().with_variant(Integer, "sqlite")


class TelemetrySample(Base):
    __tablename__ = "telemetry_samples"
    __table_args__ = (Index("ix_telemetry_samples_device_ts", "device_id", "ts"),)

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    device_id: Mapped[int] = mapped_column(Integer)  # no FK: retired stations keep their history
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    uptime_s: Mapped[float | None] = mapped_column(Float)
    cpu_temp_c: Mapped[float | None] = mapped_column(Float)
    disk_free_mb: Mapped[float | None] = mapped_column(Float)
    net_type: Mapped[str | None] = mapped_column(String(16))
    net_signal_dbm: Mapped[float | None] = mapped_column(Float)
    clock_offset_ms: Mapped[float | None] = mapped_column(Float)
    volume: Mapped[float | None] = mapped_column(Float)
    relay_on: Mapped[bool | None] = mapped_column(Boolean)
    playing: Mapped[bool | None] = mapped_column(Boolean)
    mains_v: Mapped[float | None] = mapped_column(Float)
    amp_current_a: Mapped[float | None] = mapped_column(Float)
    cabinet_temp_c: Mapped[float | None] = mapped_column(Float)
    led_reachable: Mapped[bool | None] = mapped_column(Boolean)


class TelemetryRollup(Base):
    """One metric of one station over one bucket (long format: adding a metric needs no migration)."""

    __tablename__ = "telemetry_rollups"
    __table_args__ = (Index("uq_telemetry_rollups_key", "device_id", "metric", "bucket_start", unique=True),)

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    device_id: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(32))
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    count: Mapped[int] = mapped_column(Integer)
    min: Mapped[float] = mapped_column(Float)
    avg: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)


class Alarm(Base):
    __tablename__ = "alarms"
    __table_args__ = (Index("ix_alarms_state_opened", "state", "opened_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[AlarmState] = mapped_column(String(16), default=AlarmState.OPEN)
    active_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    ack_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # NULL: cleared by itself
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
