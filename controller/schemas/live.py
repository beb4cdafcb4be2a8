"""Live voice sessions and radio relays (docs/live.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from controller.schemas.common import Number, Out
from controller.schemas.targets import Targets
from protocol.messages import Priority


class StreamOut(Out):
    """A live session or a relay (they share the row): its window, source and state."""

    id: int
    broadcast_id: int
    kind: str
    title: str
    priority: str
    source_url: str | None = None
    fallback: str
    filler: list[str]
    dead_air_s: Number
    start_at: str
    end_at: str
    status: str
    ended_at: str | None = None


class PcmFormat(Out):
    encoding: str
    rate: int
    channels: int


class LiveOut(StreamOut):
    """A live session: where the operator's microphone goes (`ws_path`) and who listens."""

    item_id: str
    ws_path: str
    format: PcmFormat
    listeners: int
    operator_connected: bool
    stations: int | None = None


class RelayOut(StreamOut):
    """A relay of an allow-listed stream (`format` as the source was declared)."""

    format: str | None = None
    item_id: str | None = None
    stations: int | None = None


# -- requests ------------------------------------------------------------------------------------------
class LiveCreate(BaseModel):
    """POST /api/v1/live: a live voice session."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="Phát trực tiếp", min_length=1, max_length=300)
    targets: Targets
    priority: Priority = Priority.EMERGENCY
    max_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    # Needed (with the right to give it) when a non-emergency session breaks a commune's policy.
    override_reason: str | None = Field(default=None, max_length=1000)


class RelayCreate(BaseModel):
    """POST /api/v1/relays: an allow-listed stream relayed for a window."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="Tiếp sóng", min_length=1, max_length=300)
    source_url: str = Field(min_length=8, max_length=2000)
    format: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,16}$")  # ffmpeg -f hint, e.g. mp3
    targets: Targets
    start_at: AwareDatetime | None = None  # None: now
    end_at: AwareDatetime
    priority: Priority = Priority.RELAY
    fallback: Literal["silence", "filler"] = "silence"
    filler: list[str] = Field(default_factory=list, max_length=20)  # media sha256, played in dead air
    dead_air_s: float = Field(default=10.0, ge=1, le=600)
    # Needed (with the right to give it) when the relay breaks a commune's policy.
    override_reason: str | None = Field(default=None, max_length=1000)
