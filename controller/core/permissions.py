"""Who may do what, and where: one small permission matrix shared by the panel and the API.

A user has one role and (except admins) one area. The role says *what* they may do
(the matrix below); the area says *where*. Since Vietnam's two-tier reform (1 July 2025,
docs/areas.md) an area is a province (its communes), a group of communes (a former district, a
coastal belt: its member communes), a commune, or a village (its commune). A user whose `area_id`
is empty acts on the whole installation; only an admin should create such accounts for non-admin
roles.

| action \\ role      | admin | province |  group   | commune | approver | technician | viewer |
|--------------------|:-----:|:--------:|:--------:|:-------:|:--------:|:----------:|:------:|
| view               |   x   |    x     |    x     |    x    |    x     |     x      |   x    |
| media.upload       |   x   |    x     |    x     |    x    |          |            |        |
| broadcast.send     |   x   |    x     |    x     |    x    |          |            |        |
| broadcast.emergency|   x   |    x     |    x     |    x    |          |            |        |
| broadcast.approve  |   x   |    x     |          |         |    x     |            |        |
| schedule.edit      |   x   |    x     |    x     |    x    |          |            |        |
| led.compose        |   x   |    x     |    x     |    x    |          |            |        |
| device.manage      |   x   |          |          |         |          |     x      |        |
| device.test        |   x   |          |          |         |          |     x      |        |
| report.view        |   x   |    x     |    x     |    x    |    x     |     x      |   x    |
| audit.view         |   x   |    x     |          |         |    x     |            |        |
| policy.edit        |   x   |    x     |          |         |          |            |        |
| user.manage        |   x   |          |          |         |          |            |        |

`operator` is the foundation's unscoped operator role, kept as an alias of `province` so
existing accounts and API clients keep working; `district` (the pre-2025 district operator) is an
alias of `group` for one release (migration 0021 renames stored roles).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Area, Device, User
from controller.db.statuses import AreaLevel, DeviceKind


class Action(StrEnum):
    VIEW = "view"
    MEDIA_UPLOAD = "media.upload"
    BROADCAST_SEND = "broadcast.send"
    BROADCAST_EMERGENCY = "broadcast.emergency"
    BROADCAST_APPROVE = "broadcast.approve"
    SCHEDULE_EDIT = "schedule.edit"
    LED_COMPOSE = "led.compose"
    DEVICE_MANAGE = "device.manage"
    DEVICE_TEST = "device.test"
    REPORT_VIEW = "report.view"
    AUDIT_VIEW = "audit.view"
    POLICY_EDIT = "policy.edit"
    USER_MANAGE = "user.manage"


_OPERATE = {
    Action.VIEW, Action.MEDIA_UPLOAD, Action.BROADCAST_SEND, Action.BROADCAST_EMERGENCY,
    Action.SCHEDULE_EDIT, Action.LED_COMPOSE, Action.REPORT_VIEW,
}  # fmt: skip

MATRIX: dict[str, frozenset[Action]] = {
    "admin": frozenset(Action),
    "province": frozenset(_OPERATE | {Action.BROADCAST_APPROVE, Action.AUDIT_VIEW, Action.POLICY_EDIT}),
    "group": frozenset(_OPERATE),
    "commune": frozenset(_OPERATE),
    "approver": frozenset({Action.VIEW, Action.BROADCAST_APPROVE, Action.REPORT_VIEW, Action.AUDIT_VIEW}),
    "technician": frozenset({Action.VIEW, Action.DEVICE_MANAGE, Action.DEVICE_TEST, Action.REPORT_VIEW}),
    "viewer": frozenset({Action.VIEW, Action.REPORT_VIEW}),
}
MATRIX["operator"] = MATRIX["province"]
MATRIX["district"] = MATRIX["group"]  # deprecated alias (one release)

# Roles offered when an admin creates a user (the legacy aliases are not offered).
ROLES = ("admin", "province", "group", "commune", "approver", "technician", "viewer")
# The area level a scoped role is normally attached to (used to validate the admin form).
ROLE_LEVEL = {"province": "province", "group": "group", "commune": "commune"}


def roles_with(action: Action) -> tuple[str, ...]:
    """Every role allowed `action` (for the API's `require_role(*roles_with(...))`)."""
    return tuple(role for role, actions in MATRIX.items() if action in actions)


def can(user: User, action: Action | str) -> bool:
    """The role half of the check: may this role ever do this (somewhere)?"""
    return user.active and Action(action) in MATRIX.get(user.role, frozenset())


def area_chain(session: Session, area_id: int) -> list[int]:
    """The area and its ancestors, nearest first (at most a handful of rows)."""
    chain: list[int] = []
    current: int | None = area_id
    while current is not None and current not in chain and len(chain) < 16:
        chain.append(current)
        current = session.scalar(select(Area.parent_id).where(Area.id == current))
    return chain


def covers(session: Session, user: User, area_id: int) -> bool:
    """Is `area_id` inside the user's area (or is the user unscoped)?

    The user's area itself and everything under it; for a group, its member communes (and
    their villages), and a group whose every commune the user covers."""
    if user.role == "admin" or user.area_id is None:
        return True
    chain = area_chain(session, area_id)
    if user.area_id in chain:
        return True
    levels = dict(session.execute(select(Area.id, Area.level).where(Area.id.in_(chain))).all())
    scope = communes_in_scope(session, user) or set()
    communes = [a for a in chain if levels.get(a) == AreaLevel.COMMUNE]
    if communes:
        return communes[0] in scope
    if levels.get(area_id) == AreaLevel.GROUP:
        members = _members(session, [area_id])
        return bool(members) and members <= scope
    return False


def _members(session: Session, group_ids: Iterable[int]) -> set[int]:
    from controller.db.models import AreaGroupMember

    ids = set(group_ids)
    if not ids:
        return set()
    return set(session.scalars(select(AreaGroupMember.commune_id).where(AreaGroupMember.group_id.in_(ids))))


def can_act_on_area(session: Session, user: User, action: Action | str, area_id: int) -> bool:
    """The whole check: the role allows the action and the area lies within the user's scope."""
    return can(user, action) and covers(session, user, area_id)


def can_act_on_device(session: Session, user: User, action: Action | str, device: Device) -> bool:
    return can_act_on_area(session, user, action, device.commune_id)


def communes_in_scope(session: Session, user: User) -> set[int] | None:
    """The commune ids a user sees and acts on; None means every commune."""
    if user.role == "admin" or user.area_id is None:
        return None
    found: set[int] = set()
    frontier = [user.area_id]
    seen: set[int] = set()
    while frontier:
        rows = session.execute(
            select(Area.id, Area.level, Area.parent_id).where(Area.id.in_(frontier))
        ).all()
        for area_id, level, _parent in rows:
            seen.add(area_id)
            if level == AreaLevel.COMMUNE:
                found.add(area_id)
            elif level == AreaLevel.GROUP and area_id == user.area_id:
                found |= _members(session, [area_id])  # a group operator: the group's communes
        frontier = [
            i for i in session.scalars(select(Area.id).where(Area.parent_id.in_(frontier)))
            if i not in seen
        ]
    # A user attached to a village acts on that village's commune.
    if not found:
        chain = area_chain(session, user.area_id)
        levels = dict(session.execute(select(Area.id, Area.level).where(Area.id.in_(chain))).all())
        found = {a for a in chain if levels.get(a) == AreaLevel.COMMUNE}
    return found


def all_in_scope(session: Session, user: User, commune_ids: Iterable[int]) -> bool:
    scope = communes_in_scope(session, user)
    return scope is None or set(commune_ids) <= scope


def require_targets_in_scope(session: Session, user: User, targets: object, kind: str | None = None) -> None:
    """Refuse (403, Vietnamese message) targets reaching outside the user's area.

    `targets` is a `controller.services.targets.Targets`: every commune it names (by id or
    code), the communes of the groups it names, and the communes of the stations it resolves to
    (devices, tags) must lie inside the user's scope. "All" is only for unscoped users.
    """
    from controller.core.errors import UserError
    from controller.services.targets import Targets, commune_ids, resolve

    scope = communes_in_scope(session, user)
    if scope is None:
        return
    t = targets if isinstance(targets, Targets) else Targets.model_validate(targets)
    if t.all:
        raise UserError(403, "scope.all_forbidden")
    wanted = commune_ids(session, t)
    if t.devices or t.tags:
        kinds = [kind] if kind else list(DeviceKind)
        only = Targets(devices=t.devices, tags=t.tags)
        wanted |= {d.commune_id for k in kinds for d in resolve(session, only, kind=k)}
    outside = sorted(wanted - scope)
    if outside:
        raise UserError(403, "scope.forbidden", names=area_names(session, outside))


# -- issue 16 (CAP threads, live sessions, relays): who may stop or take over what was sent ---------
def communes_of_broadcasts(session: Session, broadcast_ids: Iterable[int]) -> dict[int, set[int]]:
    """The communes each broadcast's stations lie in (from its deliveries), by broadcast id."""
    from controller.db.models import Delivery

    ids = sorted(set(broadcast_ids))
    out: dict[int, set[int]] = {i: set() for i in ids}
    if ids:
        rows = session.execute(select(Delivery.broadcast_id, Device.commune_id)
                               .join(Device, Device.id == Delivery.device_id)
                               .where(Delivery.broadcast_id.in_(ids)))  # fmt: skip
        for bc_id, commune_id in rows:
            out[bc_id].add(commune_id)
    return out


def outside_scope(session: Session, user: User, commune_ids: Iterable[int]) -> set[int]:
    """The communes of `commune_ids` the user's scope does not cover (empty: all covered)."""
    scope = communes_in_scope(session, user)
    return set() if scope is None else set(commune_ids) - scope


def area_names(session: Session, area_ids: Iterable[int]) -> str:
    """The areas' names for a message, "Xã A, Xã B" (the id where a name is missing)."""
    ids = sorted(set(area_ids))
    names = dict(session.execute(select(Area.id, Area.name).where(Area.id.in_(ids))).all()) if ids else {}
    return ", ".join(names.get(i) or str(i) for i in ids)


# -- reads and actions filtered by area (issue 16 item 7) -------------------------------------------
# One rule for the API and the panel: reading another area's object is a 404 (its existence is not
# revealed), a list holds only the caller's areas, and an action on (or into) another area is a 403
# that names the area. The panel used to have its own copies of these checks; both call these now.


def in_scope(scope: set[int] | None, column: Any) -> list[Any]:
    """SQL conditions keeping rows whose commune `column` lies in `scope` (none when unscoped)."""
    if scope is None:
        return []
    return [column.in_(scope or {-1})]


def require_area_action(session: Session, user: User, action: Action | str, area_id: int) -> None:
    """403 unless the role allows `action` and `area_id` lies in the user's area (says which area)."""
    from controller.core.errors import UserError

    if not can(user, action):
        raise UserError(403, "auth.forbidden")
    if not covers(session, user, area_id):
        raise UserError(403, "scope.forbidden", names=area_names(session, [area_id]))


def visible_device(session: Session, user: User, device_id: int) -> Device:
    """The station if the user may see it; otherwise 404, as if it did not exist."""
    from controller.core.errors import NotFound

    device = session.get(Device, device_id)
    if device is None or not covers(session, user, device.commune_id):
        raise NotFound("device.not_found", id=device_id)
    return device


def device_for_action(session: Session, user: User, action: Action | str, device_id: int) -> Device:
    """The station for an action: 404 if it does not exist, 403 if it lies outside the user's area."""
    from controller.core.errors import NotFound

    device = session.get(Device, device_id)
    if device is None:
        raise NotFound("device.not_found", id=device_id)
    require_area_action(session, user, action, device.commune_id)
    return device


def targets_reach(session: Session, targets: object, scope: set[int] | None,
                  kind: str = DeviceKind.SPEAKER) -> bool:
    """Do the targets name at least one station (or commune) inside `scope`? "All" reaches every area."""
    from sqlalchemy import func, or_

    from controller.services.targets import Targets, commune_ids, resolve

    if scope is None:
        return True
    t = targets if isinstance(targets, Targets) else Targets.model_validate(targets or {})
    communes = commune_ids(session, t)
    if t.all or communes & scope:
        return True
    if t.tags:
        return any(d.commune_id in scope for d in resolve(session, t, kind=kind))
    conds = [Device.id.in_(t.devices), Device.commune_id.in_(communes)]
    found = session.scalar(
        select(func.count()).select_from(Device).where(or_(*conds), Device.commune_id.in_(scope))
    )
    return bool(found)


def broadcasts_in_scope(scope: set[int]) -> Any:
    """Ids of broadcasts with at least one station in these communes (a subquery)."""
    from controller.db.models import Delivery

    return (
        select(Delivery.broadcast_id).join(Device, Device.id == Delivery.device_id)
        .where(Device.commune_id.in_(scope or {-1})).distinct()
    )  # fmt: skip


def broadcast_filter(session: Session, user: User) -> list[Any]:
    """SQL conditions keeping the broadcasts the user sees: those reaching their area, and their own."""
    from sqlalchemy import or_

    from controller.db.models import Broadcast

    scope = communes_in_scope(session, user)
    if scope is None:
        return []
    return [or_(Broadcast.id.in_(broadcasts_in_scope(scope)), Broadcast.created_by == user.id)]


def visible_broadcast(session: Session, user: User, broadcast_id: int) -> Any:
    """The broadcast if it reaches the user's area (or they sent it); otherwise 404."""
    from controller.core.errors import NotFound
    from controller.db.models import Broadcast

    q = select(Broadcast).where(Broadcast.id == broadcast_id, *broadcast_filter(session, user))
    bc = session.scalar(q)
    if bc is None:
        raise NotFound("broadcast.not_found", id=broadcast_id)
    return bc


def visible_schedule(session: Session, user: User, schedule_id: int) -> Any:
    """The schedule if it reaches a station in the user's area; otherwise 404."""
    from controller.core.errors import NotFound
    from controller.db.models_schedules import Schedule

    sc = session.get(Schedule, schedule_id)
    if sc is None or not targets_reach(session, sc.targets, communes_in_scope(session, user)):
        raise NotFound("schedule.not_found", id=schedule_id)
    return sc


def reaching_scope(session: Session, user: User, rows: Iterable[Any], targets_of: Callable[[Any], object], *,
                   kind: str = DeviceKind.SPEAKER, limit: int | None = None) -> list[Any]:
    """The rows (schedules, LED texts: anything with targets) that reach the user's area, in order.

    Iterates the caller's ordered query and stops at `limit`, so a scoped user still gets a
    full page of their own rows rather than the first `limit` of everyone's, filtered down.
    """
    scope = communes_in_scope(session, user)
    out: list[Any] = []
    for row in rows:
        if limit is not None and len(out) >= limit:
            break
        if targets_reach(session, targets_of(row), scope, kind):
            out.append(row)
    return out
