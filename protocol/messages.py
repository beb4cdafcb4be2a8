"""Message bodies on the wire (pydantic models: they are the edge)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Priority(StrEnum):
    """Thông tư 39 levels, plus relay/filler below normal. Order matters."""

    FILLER = "filler"
    RELAY = "relay"
    NORMAL = "normal"
    PRIORITY = "priority"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {p: i for i, p in enumerate(Priority)}


class CommandKind(StrEnum):
    DESIRED_STATE = "desired_state"
    PLAY = "play"  # immediate or at an instant, outside the desired-state horizon
    CANCEL = "cancel"  # stop an item (by item_id) wherever it is in its life
    PING = "ping"


class EventKind(StrEnum):
    ACK = "ack"  # a signed message was accepted
    REJECTED = "rejected"  # a message was refused (bad signature, expired, replayed, ...)
    PLAY_STARTED = "play_started"
    PLAY_FINISHED = "play_finished"
    PLAY_FAILED = "play_failed"
    INTERRUPTED = "interrupted"
    MISSED = "missed"
    FAULT = "fault"


class RejectReason(StrEnum):
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REPLAYED = "replayed"
    STALE = "stale"  # desired state older than the one applied
    WRONG_TARGET = "wrong_target"
    UNSUPPORTED = "unsupported"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MediaRef(_Model):
    """Audio is fetched over HTTP by content address, never carried over MQTT."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1)
    duration_s: float = Field(gt=0)


class ScheduleItem(_Model):
    """One thing to play once at an absolute instant; item_id makes it idempotent."""

    item_id: str = Field(min_length=1, max_length=128)
    broadcast_id: int | None = None
    title: str = ""
    start_at: AwareDatetime
    priority: Priority = Priority.NORMAL
    volume: int | None = Field(default=None, ge=0, le=100)
    media: list[MediaRef] = Field(min_length=1)

    @property
    def duration_s(self) -> float:
        return sum(m.duration_s for m in self.media)


class LedMessage(_Model):
    """One text for LED boards, shown inside its validity window (docs/led.md)."""

    item_id: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=1000)
    mode: str = Field(default="hold", pattern=r"^(hold|scroll|flash|rotate)$")
    speed: int = Field(default=3, ge=1, le=5)
    color: str = Field(default="amber", pattern=r"^(red|green|amber|yellow|white|orange)$")
    duration_s: int = Field(default=10, ge=1, le=3600)  # time on screen per turn when several rotate
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    priority: Priority = Priority.NORMAL


class BrightnessStep(_Model):
    """From local time `at` (HH:MM, in the content's timezone) on, the board runs at `percent`."""

    at: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    percent: int = Field(ge=0, le=100)


class LedContent(_Model):
    messages: list[LedMessage] = Field(default_factory=list)
    brightness: list[BrightnessStep] = Field(default_factory=list)
    timezone: str = "Asia/Ho_Chi_Minh"


class DesiredState(_Model):
    """Retained per device: a station that reconnects converges without asking."""

    version: int = Field(ge=1)
    volume: int = Field(default=80, ge=0, le=100)
    config_version: int = 0
    horizon_until: AwareDatetime
    schedule: list[ScheduleItem] = Field(default_factory=list)
    led: LedContent | None = None  # LED boards only; speakers never get it


class PlayCommand(_Model):
    item: ScheduleItem


class CancelCommand(_Model):
    item_id: str


class Event(_Model):
    """Device -> controller. Idempotent by id: the controller stores each id once."""

    id: str = Field(min_length=8, max_length=64)
    kind: EventKind
    ts: AwareDatetime
    ref: str | None = None  # envelope id for ack / rejected
    item_id: str | None = None
    broadcast_id: int | None = None
    reason: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class ReportedState(_Model):
    """Retained per device. Birth message when online, Last Will when gone."""

    online: bool
    ts: AwareDatetime | None = None
    kind: str | None = None
    agent_version: str | None = None
    desired_version: int | None = None
    clock_offset_ms: float | None = None
    playing: str | None = None
    led: dict[str, Any] | None = None  # LED boards: what the board shows now (docs/led.md)


class Telemetry(_Model):
    ts: AwareDatetime
    uptime_s: float | None = None
    relay_on: bool | None = None
    mains_v: float | None = None
    amp_current_a: float | None = None
    cabinet_temp_c: float | None = None
    volume: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


def parse_time(value: str | datetime) -> datetime:
    """Parse an ISO-8601 instant that must carry an offset."""
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    if dt.tzinfo is None:
        raise ValueError("an instant needs a UTC offset, e.g. 2026-11-26T05:30:00+07:00")
    return dt
