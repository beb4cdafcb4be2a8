"""LED board content: compose (check or send), cancel, list (the API's and the panel's).

The caller is checked here for the API and the panel alike: the right to compose LED
texts and every target board inside the caller's area. A send queues its boards'
dispatch in the caller's transaction; the caller commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controller.core.permissions import Action, require_targets_in_scope
from controller.db.models import User
from controller.db.models_led import LedMessageRow
from controller.db.statuses import DeviceKind
from controller.services import led
from controller.usecases.access import require


def compose(
    session: Session, user: User, req: led.LedMessageCreate, *, lang: str
) -> tuple[LedMessageRow | None, list[int], dict[str, Any]]:
    """What each board will show; stored (and sent) unless `req.dry_run`."""
    require(user, Action.LED_COMPOSE)
    # a commune operator: own commune only
    require_targets_in_scope(session, user, req.targets, DeviceKind.LED)
    return led.create(session, req, user.id, lang=lang)


def cancel(session: Session, user: User, message_id: int) -> list[int]:
    """Only a text the caller could have sent may be cancelled."""
    require(user, Action.LED_COMPOSE)
    found = session.get(LedMessageRow, message_id)
    if found is not None:
        require_targets_in_scope(session, user, found.targets, DeviceKind.LED)
    return led.cancel(session, message_id, user.id)


def visible(session: Session, user: User, limit: int, *, active_only: bool = False) -> list[LedMessageRow]:
    """Newest first: the texts that reach a board in the caller's area (the panel: active ones)."""
    return led.visible_messages(session, user, min(limit, 1000), active_only=active_only)
