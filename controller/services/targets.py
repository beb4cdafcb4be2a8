"""Turning an operator's target (all / communes / groups / devices / tags) into stations.

Communes and groups may be named by id or by official code (docs/areas.md); `districts` (the
pre-2025 name of groups, same ids after migration 0021) is folded into `groups` by the schema.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.db.models import Area, AreaGroupMember, Device
from controller.db.statuses import AreaLevel, DeviceKind
from controller.schemas.targets import Targets

__all__ = ["Targets", "area_ids", "commune_ids", "group_members", "groups_of", "normal_code", "normalized",
           "resolve", "stored"]


def normal_code(code: str) -> str:
    """Official codes compare without leading zeros ("08869" == "8869"); other codes as given."""
    code = code.strip()
    return str(int(code)) if code.isdigit() else code


def area_ids(session: Session, refs: Iterable[int | str], level: AreaLevel) -> list[int]:
    """Ids for a list of ids and official codes of one level (422 naming an unknown code)."""
    ids = [r for r in refs if isinstance(r, int)]
    codes = {normal_code(r) for r in refs if isinstance(r, str)}
    if codes:
        known = {normal_code(c): i for i, c in session.execute(
            select(Area.id, Area.code).where(Area.level == level, Area.code.is_not(None)))}
        unknown = sorted(c for c in codes if c not in known)
        if unknown:
            raise UserError(422, "area.unknown_code", code=", ".join(unknown), level=str(level))
        ids += [known[c] for c in codes]
    return sorted(set(ids))


def group_members(session: Session, group_ids: Iterable[int]) -> set[int]:
    """The communes of these groups."""
    ids = set(group_ids)
    if not ids:
        return set()
    return set(session.scalars(select(AreaGroupMember.commune_id).where(AreaGroupMember.group_id.in_(ids))))


def commune_ids(session: Session, targets: Targets) -> set[int]:
    """Every commune the targets name directly: by id or code, and the communes of the groups."""
    out = set(area_ids(session, targets.communes, AreaLevel.COMMUNE))
    return out | group_members(session, area_ids(session, targets.groups, AreaLevel.GROUP))


def normalized(session: Session, targets: Targets) -> Targets:
    """The same targets with ids only (codes looked up, districts already folded into groups)."""
    return targets.model_copy(update={
        "communes": area_ids(session, targets.communes, AreaLevel.COMMUNE),
        "groups": area_ids(session, targets.groups, AreaLevel.GROUP),
        "districts": [],
    })  # fmt: skip


def stored(session: Session, targets: Targets) -> dict[str, object]:
    """What a row keeps in its `targets` column: ids only, so later reads need no code lookup."""
    return normalized(session, targets).model_dump(exclude_defaults=True)


def resolve(session: Session, targets: Targets, kind: str = DeviceKind.SPEAKER) -> list[Device]:
    """Active stations of `kind` that the targets name, in id order, without duplicates."""
    base = select(Device).where(Device.kind == kind, Device.retired_at.is_(None))
    if targets.all:
        return list(session.scalars(base.order_by(Device.id)))
    found: dict[int, Device] = {}
    if targets.devices:
        for d in session.scalars(base.where(Device.id.in_(targets.devices))):
            found[d.id] = d
    communes = commune_ids(session, targets)
    if communes:
        for d in session.scalars(base.where(Device.commune_id.in_(communes))):
            found[d.id] = d
    if targets.tags:
        wanted = set(targets.tags)
        for d in session.scalars(base):
            if wanted.intersection(d.tags or []):
                found[d.id] = d
    return [found[i] for i in sorted(found)]


def groups_of(session: Session, device: Device) -> dict[str, int]:
    """The area group topics a station listens on: its commune and province (and, on an area
    tree older than migration 0021, whatever lies between). Groups of communes have no topic of
    their own: an emergency to a group publishes once per member commune (docs/areas.md)."""
    groups: dict[str, int] = {}
    area: Area | None = session.get(Area, device.commune_id)
    while area is not None:
        if area.level != AreaLevel.GROUP:
            groups[area.level] = area.id
        area = session.get(Area, area.parent_id) if area.parent_id else None
    return groups
