"""Reports: monthly minutes per commune and the audit trail."""

from __future__ import annotations

from typing import Any

from controller.schemas.common import Number, Out


class MonthlyRow(Out):
    """One commune in one local month (mm/yyyy): minutes really broadcast and plays by outcome."""

    commune_id: int
    commune: str
    commune_code: str | None = None  # the official code (docs/areas.md)
    month: str
    minutes: Number
    played: int
    missed: int
    failed: int
    interrupted: int


class AuditEntryOut(Out):
    id: int
    ts: str
    user_id: int | None = None
    username: str | None = None
    action: str
    object_type: str | None = None
    object_id: str | None = None
    detail: dict[str, Any] | None = None
