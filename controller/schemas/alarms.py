"""Alarms of the stations: list, acknowledge, resolve."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controller.schemas.common import Out


class AlarmAction(BaseModel):
    """The optional note of an acknowledge or resolve."""

    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=1000)


class AlarmOut(Out):
    id: int
    device_id: int
    kind: str
    state: str
    device_uid: str | None = None
    device_name: str | None = None
    opened_at: str
    acknowledged_at: str | None = None
    acknowledged_by: int | None = None
    ack_note: str | None = None
    resolved_at: str | None = None
    resolved_by: int | None = None
    detail: dict[str, Any]
