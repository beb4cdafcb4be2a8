"""Remote diagnostics of one station (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


# -- requests ------------------------------------------------------------------------------------------
class DiagnosticRequest(BaseModel):
    """POST /api/v1/devices/{id}/diagnostics: a closed-list action and its params."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
