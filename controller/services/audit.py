"""Who did what: every change an operator makes is written here in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controller.db.models import AuditEntry


def record(
    session: Session,
    user_id: int | None,
    action: str,
    object_type: str,
    object_id: object = None,
    **detail: Any,
) -> None:
    session.add(
        AuditEntry(
            user_id=user_id,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            detail=detail,
        )
    )
