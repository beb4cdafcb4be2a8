"""CAP 1.2 alerts received from upstream warning systems (docs/cap.md)."""

from __future__ import annotations

from typing import Any

from controller.schemas.common import Out


class CapRecordOut(Out):
    """One received alert and what became of it (`outcome`, the broadcast it started)."""

    id: int
    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    scope: str
    references: list[str] | None = None
    thread_id: int | None = None
    language: str | None = None
    event: str | None = None
    headline: str | None = None
    urgency: str | None = None
    severity: str | None = None
    certainty: str | None = None
    priority: str | None = None
    broadcast_id: int | None = None
    outcome: str
    detail: dict[str, Any] | None = None
    received_at: str | None = None


class CapReceived(CapRecordOut):
    """POST /cap: 201 a new alert, 200 one already received (`duplicate`)."""

    duplicate: bool


class CapRecordFull(CapRecordOut):
    """GET /cap/{id}: with the XML as received."""

    raw_xml: str
