"""Station enrollment: issuing the one-time code that puts a Pi on a station.

The right to manage stations and the station's area are checked here for the API and the
panel alike (the code is the credential: only someone who may manage that station gets one).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from controller.core.permissions import Action
from controller.db.models import User
from controller.services import enrollment
from controller.usecases.access import require


def issue_code(
    session: Session, user: User, device_id: int, *, pepper: bytes, ttl: timedelta
) -> enrollment.IssuedCode:
    """A fresh code (any earlier unused one stops working); `enrollment.issue_code` checks the area."""
    require(user, Action.DEVICE_MANAGE)
    return enrollment.issue_code(session, device_id, user.id, pepper=pepper, ttl=ttl, actor=user)
