"""Live voice sessions and radio relays (docs/live.md)."""

from __future__ import annotations

from controller.schemas.common import Number, Out


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
