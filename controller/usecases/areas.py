"""The area tree (docs/areas.md): list (scoped, searchable by current and former names) and
create (admins). The API's /api/v1/areas and the panel call these."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.core.permissions import Action, communes_in_scope
from controller.db.models import User
from controller.services import area_import, areas
from controller.usecases.access import require


def listing(session: Session, user: User, f: areas.AreaFilter) -> list[dict[str, Any]]:
    """Every area for an unscoped user; otherwise their own area, their communes with their
    villages, the province above them and the groups holding any of their communes."""
    require(user, Action.VIEW)
    scope = communes_in_scope(session, user)
    if scope is not None:
        f.visible = areas.visible_areas(session, scope) | ({user.area_id} if user.area_id else set())
    return areas.listing(session, f)


def _admin(user: User) -> None:
    if user.role != "admin" or not user.active:
        raise UserError(403, "auth.forbidden")


def create(session: Session, user: User, req: areas.NewArea) -> dict[str, Any]:
    """Only an admin shapes the tree (the importer, `communecast areas import`, is the usual way)."""
    _admin(user)
    return areas.create(session, user.id, req)


def import_province(session: Session, user: User, ref: str, *, dry_run: bool) -> area_import.ImportResult:
    """A province and its communes from the packages (services/area_import.py), as
    `communecast areas import` does; admins only. The caller commits (nothing to commit on a
    dry run)."""
    _admin(user)
    try:
        return area_import.import_province(session, ref.strip(), dry_run=dry_run, user_id=user.id)
    except area_import.ImportError_ as exc:
        raise UserError(422, "areas.unknown_province", province=ref.strip()[:100]) from exc
