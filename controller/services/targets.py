"""Turning an operator's target (all / communes / districts / devices / tags) into stations."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Area, Device
from controller.db.statuses import AreaLevel, DeviceKind
from controller.schemas.targets import Targets


def resolve(session: Session, targets: Targets, kind: str = DeviceKind.SPEAKER) -> list[Device]:
    """Active stations of `kind` that the targets name, in id order, without duplicates."""
    base = select(Device).where(Device.kind == kind, Device.retired_at.is_(None))
    if targets.all:
        return list(session.scalars(base.order_by(Device.id)))
    found: dict[int, Device] = {}
    if targets.devices:
        for d in session.scalars(base.where(Device.id.in_(targets.devices))):
            found[d.id] = d
    communes = set(targets.communes)
    if targets.districts:
        communes.update(
            session.scalars(
                select(Area.id).where(Area.parent_id.in_(targets.districts), Area.level == AreaLevel.COMMUNE)
            )
        )
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
    """The area groups a station belongs to (its group command topics)."""
    groups: dict[str, int] = {}
    area: Area | None = session.get(Area, device.commune_id)
    while area is not None:
        groups[area.level] = area.id
        area = session.get(Area, area.parent_id) if area.parent_id else None
    return groups
