"""Alarms where people are, and emergency presets (issue 20 items 8 and 9).

`UserAlertPrefs`: one row per user who wants alarms on their phone: the SMS number, the Zalo
Official Account user id, which channels, and quiet hours (local "HH:MM"). Kept apart from
`users` so the account table stays the login table and a user without the row gets nothing.

`EmergencyPreset`: a province's ready-made emergency texts (storm, flood, ...), edited by its
operators and admins; `area_id` NULL is the installation-wide default an unscoped admin edits.

`ZaloOaToken`: the one row of the Zalo OA token pair (access + single-use refresh token), kept in
the database so that every replica sees the latest rotation and a restart does not lose it.

`HeldAlarmNote`: an alarm change held back during a user's quiet hours, per channel, until the
digest at the end of the quiet hours (services/alarms/digest.py) sends it (status held -> sending
-> sent | failed | dropped).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.types import UTCDateTime


class UserAlertPrefs(Base):
    __tablename__ = "user_alert_prefs"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164 or national, digits and a leading +
    zalo_user_id: Mapped[str | None] = mapped_column(String(64))
    sms: Mapped[bool] = mapped_column(Boolean, default=False)
    zalo: Mapped[bool] = mapped_column(Boolean, default=False)
    quiet_start: Mapped[str | None] = mapped_column(String(5))  # "22:00", local time
    quiet_end: Mapped[str | None] = mapped_column(String(5))  # "06:00"
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class EmergencyPreset(Base):
    __tablename__ = "emergency_presets"
    __table_args__ = (UniqueConstraint("area_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(32))  # storm, flood, flash_flood, fire, epidemic, all_clear
    label: Mapped[str] = mapped_column(String(60))  # the button: "Bão", "Lũ", ...
    title: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    led_text: Mapped[str] = mapped_column(String(200))
    voice: Mapped[str] = mapped_column(String(32), default="vi-north")
    repeat_hours: Mapped[int | None] = mapped_column(Integer)  # None: once; n: every n hours until cancelled
    position: Mapped[int] = mapped_column(Integer, default=0)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ZaloOaToken(Base):
    __tablename__ = "zalo_oa_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # SHA-256 of the environment's refresh token this chain started from: a new one there (the
    # operator made a fresh one after a broken chain) starts a new chain.
    seed_digest: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=0)
    refreshing_by: Mapped[str | None] = mapped_column(String(64))  # the replica refreshing now
    refreshing_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class HeldAlarmNote(Base):
    __tablename__ = "held_alarm_notes"
    __table_args__ = (
        UniqueConstraint("user_id", "channel", "alarm_id", "event"),
        Index("ix_held_alarm_notes_status_user", "status", "user_id", "channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))  # sms | zalo
    alarm_id: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(16))  # opened | resolved
    kind: Mapped[str] = mapped_column(String(32))
    device_name: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the alarm opened / was resolved
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when its episode opened
    quiet: Mapped[str] = mapped_column(String(11))  # "22:00–06:00", the window it was held in
    status: Mapped[str] = mapped_column(String(8), default="held")
    digest_id: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
