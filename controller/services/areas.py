"""The area tree since the two-tier reform (docs/areas.md): province > commune > village, and
groups of communes. Listing with search by current or former name, creating, group membership.

Use cases (controller/usecases/areas.py) check the caller; this module does not.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.db.models import Area, AreaGroupMember
from controller.db.statuses import AreaLevel, CommuneKind
from controller.schemas.targets import note_deprecated
from controller.services import audit
from controller.services.targets import area_ids, normal_code

DEPRECATED_DISTRICT_LEVEL = (
    'level "district" is deprecated since the two-tier reform (1 July 2025) and will be removed in the next '
    'release: a district is created as a group of communes')
# Which level a parent must have, per level (None: no parent).
PARENT_LEVELS: dict[str, tuple[str | None, ...]] = {
    AreaLevel.PROVINCE: (None,),
    AreaLevel.GROUP: (None, AreaLevel.PROVINCE),
    AreaLevel.COMMUNE: (None, AreaLevel.PROVINCE),
    AreaLevel.VILLAGE: (AreaLevel.COMMUNE,),
}
_KIND_PREFIXES = (("phường", CommuneKind.PHUONG), ("đặc khu", CommuneKind.DAC_KHU), ("xã", CommuneKind.XA))


def fold(text: str) -> str:
    """Lower case, no diacritics (đ/Đ -> d), single spaces: "Xã Hợp Hòa" -> "xa hop hoa"."""
    decomposed = unicodedata.normalize("NFD", text.casefold().replace("đ", "d"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.split())


def kind_from_name(name: str) -> str:
    """xa | phuong | dac_khu from a commune's name ("Phường Phúc Yên" -> phuong); xa otherwise."""
    low = name.strip().casefold()
    return next((k.value for p, k in _KIND_PREFIXES if low.startswith(p)), CommuneKind.XA.value)


def groups_by_commune(session: Session, commune_ids: Iterable[int] | None = None) -> dict[int, list[int]]:
    q = select(AreaGroupMember.commune_id, AreaGroupMember.group_id).order_by(AreaGroupMember.group_id)
    if commune_ids is not None:
        q = q.where(AreaGroupMember.commune_id.in_(set(commune_ids)))
    out: dict[int, list[int]] = {}
    for commune_id, group_id in session.execute(q):
        out.setdefault(commune_id, []).append(group_id)
    return out


def members_by_group(session: Session, group_ids: Iterable[int] | None = None) -> dict[int, list[int]]:
    q = select(AreaGroupMember.group_id, AreaGroupMember.commune_id).order_by(AreaGroupMember.commune_id)
    if group_ids is not None:
        q = q.where(AreaGroupMember.group_id.in_(set(group_ids)))
    out: dict[int, list[int]] = {}
    for group_id, commune_id in session.execute(q):
        out.setdefault(group_id, []).append(commune_id)
    return out


def body(area: Area, group_ids: list[int], members: list[int] | None = None) -> dict[str, Any]:
    """One area as the API shows it (`commune_ids` only for groups)."""
    out: dict[str, Any] = {
        "id": area.id, "level": area.level, "kind": area.kind, "name": area.name, "code": area.code,
        "parent_id": area.parent_id, "group_ids": group_ids, "former_names": list(area.former_names or []),
    }  # fmt: skip
    if area.level == AreaLevel.GROUP:
        out["commune_ids"] = members or []
    return out


def matches(area: Area, folded_query: str) -> bool:
    """Does the (folded) query occur in the area's current or a former name, or is it its code?"""
    if not folded_query:
        return True
    if area.code and folded_query.isdigit() and normal_code(area.code) == normal_code(folded_query):
        return True
    return any(folded_query in fold(n) for n in [area.name, *(area.former_names or [])])


@dataclass
class AreaFilter:
    level: str | None = None
    q: str | None = None
    parent_id: int | None = None
    code: str | None = None
    visible: set[int] | None = field(default=None)  # None: every area


def listing(session: Session, f: AreaFilter) -> list[dict[str, Any]]:
    q = select(Area).order_by(Area.id)
    if f.level:
        q = q.where(Area.level == f.level)
    if f.parent_id is not None:
        q = q.where(Area.parent_id == f.parent_id)
    rows = list(session.scalars(q))
    if f.code:
        rows = [a for a in rows if a.code and normal_code(a.code) == normal_code(f.code)]
    if f.visible is not None:
        rows = [a for a in rows if a.id in f.visible]
    folded = fold(f.q or "")
    rows = [a for a in rows if matches(a, folded)]
    ids = [a.id for a in rows]
    groups = groups_by_commune(session, ids)
    members = members_by_group(session, [a.id for a in rows if a.level == AreaLevel.GROUP])
    return [body(a, groups.get(a.id, []), members.get(a.id)) for a in rows]


@dataclass
class NewArea:
    level: str
    name: str
    code: str | None = None
    kind: str | None = None
    parent_id: int | None = None
    former_names: list[str] = field(default_factory=list)
    commune_ids: list[int | str] = field(default_factory=list)  # a group's members (ids or codes)
    group_ids: list[int | str] = field(default_factory=list)  # a commune's groups (ids or codes)


def create(session: Session, user_id: int | None, req: NewArea) -> dict[str, Any]:
    """A new area. A commune goes directly under a province; a pre-2025 client creating a
    `district` gets a group, and a commune it puts "under" a group (or district) goes under the
    group's province as a member of the group (both deprecated, noted in the reply)."""
    level = req.level
    if level == "district":
        note_deprecated(DEPRECATED_DISTRICT_LEVEL)
        level = AreaLevel.GROUP
    parent = session.get(Area, req.parent_id) if req.parent_id is not None else None
    if req.parent_id is not None and parent is None:
        raise NotFound("area.not_found", id=req.parent_id)
    group_refs = list(req.group_ids)
    if level == AreaLevel.COMMUNE and parent is not None and parent.level == AreaLevel.GROUP:
        note_deprecated(DEPRECATED_DISTRICT_LEVEL)
        group_refs.append(parent.id)
        parent = session.get(Area, parent.parent_id) if parent.parent_id else None
    if (parent.level if parent else None) not in PARENT_LEVELS[level]:
        raise UserError(422, "area.bad_parent", level=level,
                        parent=parent.level if parent else "-")  # fmt: skip
    if req.code is not None and _code_taken(session, level, req.code):
        raise UserError(409, "area.code_taken", code=req.code)
    kind = req.kind if level == AreaLevel.COMMUNE else None
    if level == AreaLevel.COMMUNE and not kind:
        kind = kind_from_name(req.name)
    area = Area(level=level, kind=kind, name=req.name, code=req.code, parent_id=parent.id if parent else None,
                former_names=list(req.former_names))  # fmt: skip
    session.add(area)
    session.flush()
    if level == AreaLevel.GROUP and req.commune_ids:
        set_members(session, area.id, area_ids(session, req.commune_ids, AreaLevel.COMMUNE))
    if level == AreaLevel.COMMUNE and group_refs:
        for group_id in area_ids(session, group_refs, AreaLevel.GROUP):
            session.add(AreaGroupMember(group_id=group_id, commune_id=area.id))
        session.flush()
    audit.record(session, user_id, "area.create", "area", area.id, name=req.name, level=str(level))
    groups = groups_by_commune(session, [area.id]).get(area.id, [])
    members = members_by_group(session, [area.id]).get(area.id)
    return body(area, groups, members)


def _code_taken(session: Session, level: str, code: str) -> bool:
    codes = session.scalars(select(Area.code).where(Area.level == level, Area.code.is_not(None)))
    return normal_code(code) in {normal_code(c) for c in codes if c}


def set_members(session: Session, group_id: int, commune_ids: Iterable[int]) -> None:
    """The group's communes become exactly these."""
    wanted = set(commune_ids)
    found = set(session.scalars(select(Area.id).where(Area.id.in_(wanted), Area.level == AreaLevel.COMMUNE)))
    if wanted - found:
        raise NotFound("area.not_found", id=", ".join(str(i) for i in sorted(wanted - found)))
    session.execute(delete(AreaGroupMember).where(AreaGroupMember.group_id == group_id))
    session.add_all(AreaGroupMember(group_id=group_id, commune_id=c) for c in sorted(wanted))
    session.flush()


def visible_areas(session: Session, scope: set[int]) -> set[int]:
    """What a scoped user sees of the tree: their communes, those communes' villages and
    ancestors, and the groups holding any of their communes."""
    rows = session.execute(select(Area.id, Area.level, Area.parent_id)).all()
    parent = {i: p for i, _, p in rows}
    out = set(scope)
    for c in scope:
        p = parent.get(c)
        while p is not None and p not in out:
            out.add(p)
            p = parent.get(p)
    out |= {i for i, level, p in rows if level == AreaLevel.VILLAGE and p in scope}
    out |= {g for c, gs in groups_by_commune(session, scope).items() for g in gs}
    return out
