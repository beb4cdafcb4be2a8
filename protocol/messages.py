"""Message bodies on the wire (pydantic models: they are the edge)."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from protocol.limits import INLINE_ITEM_MAX_BYTES, INLINE_MEDIA_MAX_BYTES, RECEIPT_MAX_IDS


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
    DIAGNOSTIC = "diagnostic"  # a closed set of technician checks (protocol/ops.py), never a shell
    UPDATE = "update"  # install a signed agent release (protocol/ops.py, docs/operations.md)


class EventKind(StrEnum):
    ACK = "ack"  # a signed message was accepted
    REJECTED = "rejected"  # a message was refused (bad signature, expired, replayed, ...)
    PLAY_STARTED = "play_started"
    PLAY_FINISHED = "play_finished"
    PLAY_FAILED = "play_failed"
    INTERRUPTED = "interrupted"
    MISSED = "missed"
    FAULT = "fault"
    DIAGNOSTIC_RESULT = "diagnostic_result"  # ref = the diagnostic command's envelope id
    UPDATE_APPLIED = "update_applied"
    UPDATE_ROLLED_BACK = "update_rolled_back"  # installed, health check failed, previous release back
    UPDATE_REFUSED = "update_refused"  # bad signature, wheel hash mismatch, ...: nothing installed
    RECOVERED = "recovered"  # a fault reported earlier is over (e.g. a relayed stream is back)


class RejectReason(StrEnum):
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REPLAYED = "replayed"
    STALE = "stale"  # desired state older than the one applied
    WRONG_TARGET = "wrong_target"
    UNSUPPORTED = "unsupported"
    REVOKED_KEY = "revoked_key"  # signed by a key the controller revoked (docs/security.md)
    BAD_KEY_LINK = "bad_key_link"  # a link or revocation of cc/v1/keys that does not verify
    MEDIA_MISMATCH = "media_mismatch"  # audio inside a PLAY does not hash to its MediaRef (never played)


EventId = Annotated[str, Field(min_length=8, max_length=64)]


class _Model(BaseModel):
    """Commands are strict: a station refuses what it does not fully understand."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Report(BaseModel):
    """Device -> controller reports are tolerant: a station already updated to a newer agent
    may add fields an older controller does not know yet; they are ignored, never fatal."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# The longest base64 text of INLINE_MEDIA_MAX_BYTES (checked before anything is decoded).
_INLINE_MAX_CHARS = 4 * math.ceil(INLINE_MEDIA_MAX_BYTES / 3)


class MediaRef(_Model):
    """Audio by content address: fetched over HTTP (`GET /media/{sha256}`), or, for a short
    emergency clip, carried inside the signed PLAY itself (`inline`, docs/protocol.md "Media").

    `inline` is the base64 (RFC 4648, padded) of exactly the stored file's bytes, at most
    INLINE_MEDIA_MAX_BYTES of them. Only a PLAY command carries it (a desired state never does:
    retained messages stay small); a station stores it only once it hashes to `sha256` and
    measures `size`. Left out of the JSON when unset, so every other message reads as before.
    """

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1)
    duration_s: float = Field(gt=0)
    inline: str | None = Field(default=None, min_length=4, max_length=_INLINE_MAX_CHARS,
                               exclude_if=lambda v: v is None)
    _inline_data: bytes | None = PrivateAttr(default=None)  # decoded once, by the validation

    @model_validator(mode="after")
    def _inline_base64(self) -> MediaRef:
        if self.inline is not None:
            self._inline_data = _decode_inline(self.inline)
        return self

    def inline_bytes(self) -> bytes | None:
        """The audio carried inline (valid base64 within the limit; not yet checked against
        sha256 and size: MediaCache.put_verified does that)."""
        if self.inline is not None and self._inline_data is None:  # built without validation
            self._inline_data = _decode_inline(self.inline)
        return self._inline_data

    def without_inline(self) -> MediaRef:
        if self.inline is None:
            return self
        return MediaRef(sha256=self.sha256, size=self.size, duration_s=self.duration_s)


def _decode_inline(text: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("inline media is not valid base64") from exc
    if len(data) > INLINE_MEDIA_MAX_BYTES:
        raise ValueError(f"inline media is larger than {INLINE_MEDIA_MAX_BYTES} bytes")
    return data


def _inline_len(ref: MediaRef) -> int:
    """Decoded length of a validated inline payload, without decoding it."""
    text = ref.inline or ""
    return len(text) // 4 * 3 - text[-2:].count("=")


def _no_inline(refs: list[MediaRef], where: str) -> None:
    if any(r.inline is not None for r in refs):
        raise ValueError(f"{where} never carries inline media (only a PLAY command does)")


class StreamRef(_Model):
    """Audio fetched while it plays (docs/live.md): the controller's live voice or a relayed radio.

    It only ever arrives inside a signed item, so a station fetches no URL an operator typed
    unchecked: the controller allows only its own live path and its relay allow-list.
    """

    # http(s)://..., or a path on the controller (resolved against the agent's controller_url).
    url: str = Field(min_length=1, max_length=2000)
    kind: Literal["live", "relay"] = "relay"  # live: the end of the stream ends the item
    format: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,16}$")  # ffmpeg -f; None probes
    rate: int = Field(default=16000, ge=8000, le=48000)  # of raw "s16le" streams
    fallback: Literal["silence", "filler"] = "silence"  # played during dead air
    filler: list[MediaRef] = Field(default_factory=list, max_length=20)
    dead_air_s: float = Field(default=10.0, ge=0.5, le=600)
    # Live: the session's capability, sent as the X-Stream-Token header (never in a URL or a log).
    token: str | None = Field(default=None, max_length=128)

    @field_validator("filler")
    @classmethod
    def _filler_by_http(cls, filler: list[MediaRef]) -> list[MediaRef]:
        _no_inline(filler, "a stream's filler")
        return filler

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        on_controller = url.startswith("/") and not url.startswith("//")
        if not (url.startswith(("http://", "https://")) or on_controller):
            raise ValueError("a stream URL is http(s):// or a path on the controller")
        return url


class ScheduleItem(_Model):
    """One thing to play once at an absolute instant; item_id makes it idempotent.

    Either `media` (files, played to their end) or `stream` (played until `end_at` or, for
    live voice, until the stream ends).
    """

    item_id: str = Field(min_length=1, max_length=128)
    broadcast_id: int | None = None
    title: str = ""
    start_at: AwareDatetime
    priority: Priority = Priority.NORMAL
    volume: int | None = Field(default=None, ge=0, le=100)
    media: list[MediaRef] = Field(default_factory=list)
    stream: StreamRef | None = None
    end_at: AwareDatetime | None = None  # streams: the window closes here

    @model_validator(mode="after")
    def _media_or_stream(self) -> ScheduleItem:
        if bool(self.media) == (self.stream is not None):
            raise ValueError("an item has either media or a stream")
        if self.stream is not None and (self.end_at is None or self.end_at <= self.start_at):
            raise ValueError("a stream item needs end_at after start_at")
        if self.stream is None and self.end_at is not None:
            raise ValueError("end_at is for stream items")
        if sum(_inline_len(m) for m in self.media) > INLINE_ITEM_MAX_BYTES:
            raise ValueError(f"an item carries at most {INLINE_ITEM_MAX_BYTES} bytes of inline media")
        return self

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Media items serialize exactly as before streams existed, so older agents accept them."""
        data: dict[str, Any] = handler(self)
        if self.stream is None:
            data.pop("stream", None)
            data.pop("end_at", None)
        return data

    @property
    def has_inline(self) -> bool:
        return any(m.inline is not None for m in self.media)

    def without_inline(self) -> ScheduleItem:
        """The same item naming its audio by reference only (what a station stores and a desired
        state carries)."""
        if not self.has_inline:
            return self
        return self.model_copy(update={"media": [m.without_inline() for m in self.media]})

    @property
    def duration_s(self) -> float:
        if self.end_at is not None:
            return (self.end_at - self.start_at).total_seconds()
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

    @field_validator("schedule")
    @classmethod
    def _by_reference(cls, schedule: list[ScheduleItem]) -> list[ScheduleItem]:
        """Retained for every station: audio goes by reference only (inline is for a PLAY)."""
        for item in schedule:
            _no_inline(item.media, "a desired state")
        return schedule


class PlayCommand(_Model):
    item: ScheduleItem


class CancelCommand(_Model):
    item_id: str


class Event(_Report):
    """Device -> controller. Idempotent by id: the controller stores each id once."""

    id: str = Field(min_length=8, max_length=64)
    kind: EventKind
    ts: AwareDatetime
    ref: str | None = None  # envelope id for ack / rejected
    item_id: str | None = None
    broadcast_id: int | None = None
    reason: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    # `play_started` (docs/protocol.md, "Events"): the instant the station was READY to sound the
    # item — its audio verified in the media cache and decoded, the amplifier relay on — as if it
    # had not waited for the start on purpose (a relay deliberately switched on `relay_lead_s`
    # before the start counts at the moment it could have been). The controller learns the
    # emergency lead from it (docs/emergency.md). Optional and left out of the JSON when unset:
    # an older agent sends none (the lead falls back to the acks), an older controller ignores it.
    ready_at: AwareDatetime | None = Field(default=None, exclude_if=lambda v: v is None)


class Receipt(_Model):
    """Controller -> device on cc/v1/dev/{uid}/rcpt: these events of yours are stored.

    A station keeps each event in its outbox until it is named here, not merely until the
    broker's PUBACK: a broker or controller killed between the two hops would otherwise lose
    a proof of play (docs/architecture.md, step 7). Not signed: all it can do is make a station
    forget events it already sent, which whoever can write this topic (the controller alone, by
    the broker's ACL) could achieve just as well by dropping them."""

    ids: list[EventId] = Field(min_length=1, max_length=RECEIPT_MAX_IDS)


class ReportedState(_Report):
    """Retained per device. Birth message when online, Last Will when gone."""

    online: bool
    ts: AwareDatetime | None = None
    kind: str | None = None
    agent_version: str | None = None
    desired_version: int | None = None
    clock_offset_ms: float | None = None
    playing: str | None = None
    led: dict[str, Any] | None = None  # LED boards: what the board shows now (docs/led.md)


class Telemetry(_Report):
    ts: AwareDatetime
    uptime_s: float | None = None
    relay_on: bool | None = None
    mains_v: float | None = None
    amp_current_a: float | None = None
    cabinet_temp_c: float | None = None
    volume: int | None = None
    clock_offset_ms: float | None = None  # station clock minus reference (docs/health.md)
    # Health (docs/health.md), None where the station cannot measure it.
    playing: bool | None = None  # audio is coming out right now (cut speaker line detection)
    cpu_temp_c: float | None = None
    disk_free_mb: float | None = None
    net_type: str | None = Field(default=None, max_length=16)  # ethernet | wifi | cellular | other
    net_signal_dbm: float | None = None  # 4G RSSI (ModemManager) or Wi-Fi signal
    led_reachable: bool | None = None  # LED boards: the board controller answers
    extra: dict[str, Any] = Field(default_factory=dict)


def parse_time(value: str | datetime) -> datetime:
    """Parse an ISO-8601 instant that must carry an offset."""
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    if dt.tzinfo is None:
        raise ValueError("an instant needs a UTC offset, e.g. 2026-11-26T05:30:00+07:00")
    return dt
