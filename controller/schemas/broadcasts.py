"""Broadcasts: what POST/GET /api/v1/broadcasts... and /api/v1/play-log return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from controller.db.models import Broadcast, Delivery
from controller.db.statuses import DeliveryState
from controller.schemas.common import Number, Out, PolicyOutcome
from controller.schemas.targets import Targets
from protocol.messages import Priority


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


class DeliveryOut(Out):
    """One station's delivery of a broadcast (the raw transport state)."""

    device_id: int
    state: str
    sent_at: str | None = None
    acked_at: str | None = None
    ready_at: str | None = None  # the station could sound it (audio decoded, relay on)
    detail: str | None = None


class BroadcastOut(Out):
    """A broadcast as listed; GET one adds its deliveries (`stations`, `acked`)."""

    id: int
    title: str
    media: list[str] | None = None
    priority: str
    start_at: str | None = None
    duration_s: Number | None = None
    targets: dict[str, Any] | None = None
    status: str
    created_at: str | None = None

    @classmethod
    def body(cls, bc: Broadcast, deliveries: list[Delivery] | None = None) -> dict[str, Any]:
        """The JSON body, as a dict: the routes add their own keys before FastAPI checks it
        against the route's declared model (BroadcastCreated, BroadcastDetail...)."""
        body: dict[str, Any] = {
            "id": bc.id,
            "title": bc.title,
            "media": bc.media,
            "priority": bc.priority,
            "start_at": iso(bc.start_at),
            "duration_s": bc.duration_s,
            "targets": bc.targets,
            "status": bc.status,
            "created_at": iso(bc.created_at),
        }
        if deliveries is not None:
            body["stations"] = [
                {"device_id": d.device_id, "state": d.state, "sent_at": iso(d.sent_at),
                 "acked_at": iso(d.acked_at), "ready_at": iso(d.ready_at), "detail": d.detail}
                for d in deliveries
            ]  # fmt: skip
            body["acked"] = sum(d.state == DeliveryState.ACKED for d in deliveries)
        return body


class EmergencySent(Out):
    """How an emergency went out: the group topics, the lead and the measured timings. The POST
    answers once the PLAYs are handed to the broker (`publish_ms`); the broker's PUBACK
    (`broker_ack_ms`) and the per-station states follow at `status_url`."""

    topics: list[str] | None = None
    lead_ms: Number | None = None
    lead_basis: str | None = None
    publish_ms: Number | None = None
    broker_ack_ms: Number | None = None
    inline_bytes: int | None = None  # audio carried inside the PLAY (None: stations fetch it)
    status_url: str | None = None
    volume: Number | None = None
    schedule_id: int | None = None
    led_message_id: int | None = None


class BroadcastCreated(BroadcastOut):
    """POST /broadcasts: the broadcast, how many stations it reaches, whether it is approved
    (else a draft waiting for approval) and the policy outcome."""

    stations: int
    approved: bool
    policy: PolicyOutcome | None = None
    emergency: EmergencySent | None = None
    # Set when the broker did not answer at the time: saved, but the stations hear of it late.
    warnings: list[str] | None = None


class BroadcastMoved(BroadcastOut):
    """PATCH /broadcasts/{id}: the broadcast at its new start, how many stations are told again,
    whether it airs (else a draft waiting for an approver), the policy outcome at the new time
    and the start it had before."""

    stations: int
    approved: bool
    policy: PolicyOutcome | None = None
    previous_start_at: str | None = None
    # Set when the broker did not answer at the time: saved, but the stations hear of it late.
    warnings: list[str] | None = None


class Approved(Out):
    id: int
    status: str
    approved: bool


class EmergencyDetail(EmergencySent):
    """The emergency part of GET /broadcasts/{id}."""

    text: str | None = None
    repeat: str | None = None
    status: str | None = None
    sent_by: str | None = None
    requested_at: str | None = None
    published_at: str | None = None
    cancelled_at: str | None = None


class LatenessOut(Out):
    """How late a station started (None: not started) and why: started_late (it had the item
    in time), broker_unreachable (outage_from..outage_to), sent_late (the controller sent it
    after the start) or received_late (the station got it after the start: offline, slow link)."""

    late_ms: Number | None = None
    cause: str
    received_at: str | None = None
    outage_from: str | None = None
    outage_to: str | None = None


class StationState(Out):
    """One station's state for a broadcast, with the reason when it is not on air."""

    device_id: int
    uid: str | None = None
    name: str | None = None
    state: str
    reason: str | None = None
    sent_at: str | None = None
    acked_at: str | None = None
    ready_at: str | None = None  # audio decoded and relay on (the station's play_started)
    started_at: str | None = None
    start_error_ms: Number | None = None
    clock_offset_ms: Number | None = None
    lateness: LatenessOut | None = None


class Percentiles(Out):
    p50: Number
    p99: Number
    max: Number


class OffsetCorrected(Out):
    skew_p99_ms: Number
    spread_ms: Number


class ClockOffsets(Out):
    p99: Number
    max: Number
    reported: int


class Skew(Out):
    """Start error and skew over the stations that reported a start; `stations` 0 and nothing
    else when none did."""

    stations: int
    start_error_ms: Percentiles | None = None
    skew_ms: Percentiles | None = None
    spread_ms: Number | None = None
    offset_corrected: OffsetCorrected | None = None
    clock_offset_abs_ms: ClockOffsets | None = None


class BroadcastDetail(BroadcastOut):
    """GET /broadcasts/{id}: deliveries, per-station state, counts per state and start skew."""

    stations: list[DeliveryOut]
    acked: int
    emergency: EmergencyDetail | None = None
    station_states: list[StationState]
    counts: dict[str, int]
    skew: Skew


class PlayLogEntry(Out):
    """Proof of play: one station, one item."""

    device_id: int
    broadcast_id: int | None = None
    item_id: str
    status: str
    started_at: str | None = None
    finished_at: str | None = None
    start_error_ms: Number | None = None
    reason: str | None = None


# -- requests ------------------------------------------------------------------------------------------
class BroadcastCreate(BaseModel):
    """POST /api/v1/broadcasts (also what the panel, CAP and emergencies build)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    media_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    media: list[str] = Field(default_factory=list, max_length=50)
    targets: Targets
    start_at: AwareDatetime | None = None
    priority: Priority = Priority.NORMAL
    # Needed (with the right to give it) when the broadcast breaks a commune's policy.
    override_reason: str | None = Field(default=None, max_length=1000)
    # Emergency / priority only (docs/emergency.md): LED mirror text (also read out by TTS
    # when no media is given, in `voice`) and a repeat rule (RFC 5545 RRULE, local time).
    text: str | None = Field(default=None, min_length=1, max_length=1000)
    voice: str = Field(default="vi-north", max_length=32)
    repeat: str | None = Field(default=None, min_length=6, max_length=1000)
    # Emergency only: a shorter text for the LED boards than the one read out (issue 20 item 8,
    # emergency presets); without it the boards show `text`.
    led_text: str | None = Field(default=None, min_length=1, max_length=200)

    def playlist(self) -> list[str]:
        return ([self.media_sha256] if self.media_sha256 else []) + list(self.media)


class BroadcastPatch(BaseModel):
    """PATCH /api/v1/broadcasts/{id}: a new start for a one-off broadcast not started yet (the
    same stations, title and recording). `override_reason` as in BroadcastCreate, when the new
    time breaks a commune's policy and the caller may override it."""

    model_config = ConfigDict(extra="forbid")

    start_at: AwareDatetime
    override_reason: str | None = Field(default=None, max_length=1000)

    @field_validator("start_at")
    @classmethod
    def _a_plausible_year(cls, value: datetime) -> datetime:
        """Years 2000-2100: beyond, the UTC conversion and the policy's day arithmetic overflow."""
        if not 2000 <= value.year <= 2100:
            raise ValueError("start_at must lie between the years 2000 and 2100")
        return value
