"""Remote diagnostics of one station (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from controller.schemas.common import Out


class DiagnosticOut(Out):
    """state: pending | done | error | rejected | expired; result: the station's measurements."""

    id: str
    device_id: int
    action: str
    params: dict[str, Any]
    state: str
    result: dict[str, Any] | None = None
    created_at: str
    expires_at: str
    finished_at: str | None = None
