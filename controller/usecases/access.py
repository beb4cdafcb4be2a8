"""The permission check every use case starts with (the matrix: controller/core/permissions.py)."""

from __future__ import annotations

from controller.core.errors import UserError
from controller.core.permissions import Action, can
from controller.db.models import User


def require(user: User, action: Action) -> None:
    """403 unless the user's role may `action` at all (the area is checked per target)."""
    if not can(user, action):
        raise UserError(403, "auth.forbidden")
