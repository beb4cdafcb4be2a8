"""The media library for the API and the panel: list, rename / tag / expire, delete.

Rights: listing needs `view`, changing needs `media.upload`. Area: an unscoped user (admin, a
province operator without an area) sees and changes everything; a scoped one what they or a
colleague of their area uploaded (services/media_library.py). Another area's recording is
"not found", as elsewhere (no probing of what exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, communes_in_scope
from controller.db.models import Media, User
from controller.services import audit, media_library
from controller.services.areas import fold
from controller.usecases.access import require


@dataclass(frozen=True)
class MediaChange:
    title: str | None = None
    tags: list[str] | None = None
    expires_at: datetime | None = None
    clear_expiry: bool = False


def _uploaders(session: Session, user: User) -> list[int] | None:
    """Ids of the users whose area lies inside the caller's (None: the caller is unscoped)."""
    scope = communes_in_scope(session, user)
    if scope is None:
        return None
    out = []
    for other in session.scalars(select(User).where(User.area_id.is_not(None))):
        theirs = communes_in_scope(session, other)
        if theirs is not None and theirs and theirs <= scope:
            out.append(other.id)
    return out


def listing(session: Session, user: User, q: str | None = None, limit: int = 200) -> list[Media]:
    require(user, Action.VIEW)
    stmt = select(Media).order_by(Media.created_at.desc())
    where = media_library.visible_filter(_uploaders(session, user), user)
    if where is not None:
        stmt = stmt.where(where)
    rows = list(session.scalars(stmt.limit(min(limit, 5000) if not q else 5000)))
    if q:
        want = fold(q)
        rows = [m for m in rows
                if want in fold(media_library.display_name(m)) or want in fold(m.original_name)
                or any(want in fold(t) for t in (m.tags or [])) or m.sha256.startswith(q.strip().lower())]
    return rows[: min(limit, 5000)]


def get(session: Session, user: User, sha256: str) -> Media:
    row = session.get(Media, sha256)
    if row is None:
        raise NotFound("media.not_found", sha256=sha256[:64])
    where = media_library.visible_filter(_uploaders(session, user), user)
    mine = select(Media.sha256).where(Media.sha256 == sha256, where) if where is not None else None
    if mine is not None and session.scalar(mine) is None:
        raise NotFound("media.not_found", sha256=sha256[:64])
    return row


def change(session: Session, user: User, sha256: str, c: MediaChange) -> Media:
    require(user, Action.MEDIA_UPLOAD)
    row = get(session, user, sha256)
    fields: dict[str, object] = {}
    if c.title is not None:
        fields["title"] = c.title.strip() or None
    if c.tags is not None:
        fields["tags"] = sorted({t.strip() for t in c.tags if t.strip()})
    if c.clear_expiry:
        fields["expires_at"] = None
    elif c.expires_at is not None:
        fields["expires_at"] = c.expires_at
    for k, v in fields.items():
        setattr(row, k, v)
    audit.record(session, user.id, "media.update", "media", sha256, fields=sorted(fields))
    return row


def delete(session: Session, user: User, sha256: str) -> Media:
    """Refused while something still to come uses it (409 naming what); the caller removes the
    file after the commit (MediaStore.path_for)."""
    require(user, Action.MEDIA_UPLOAD)
    row = get(session, user, sha256)
    if row.origin == "asset":
        raise UserError(409, "media.asset", name=media_library.display_name(row))
    uses = media_library.usage(session, sha256)
    if uses:
        raise media_library.InUse(media_library.display_name(row), uses)
    session.delete(row)
    audit.record(session, user.id, "media.delete", "media", sha256, name=media_library.display_name(row))
    return row
