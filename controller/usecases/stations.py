"""Stations in bulk (issue 20, item 5): one action on many selected stations, all or nothing.

The panel's stations list (and any API client) hands a list of station ids; the right and the
area are checked for EVERY station before anything is stored or sent, so one station outside
the caller's area refuses the whole action and leaves all of them untouched. The refusal names
the communes, not the stations: a crafted form must not reveal another area's station names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.core.permissions import Action, area_names, communes_in_scope
from controller.db.models import Device, User
from controller.db.models_ops import DiagnosticCommandRow
from controller.schemas.diagnostics import DiagnosticRequest
from controller.services import diagnostics, enrollment
from controller.services.station_commands import CommandBus, StationCommands
from controller.usecases.access import require
from protocol import topics

MAX_SELECTED = 500  # a page of the list is 50; "select all matching" stays bounded
BULK_DIAGNOSTICS = ("test_tone", "set_volume", "led_test_pattern")


def selected(session: Session, user: User, action: Action, device_ids: Iterable[int]) -> list[Device]:
    """The selected active stations, in the order given, once each; or a refusal for all of them:
    403 if the role lacks `action` or any station lies outside the caller's area, 404 if any is
    unknown or retired, 422 if none or too many were chosen."""
    require(user, action)
    ids = list(dict.fromkeys(device_ids))
    if not ids:
        raise UserError(422, "stations.none_selected")
    if len(ids) > MAX_SELECTED:
        raise UserError(422, "stations.too_many", limit=MAX_SELECTED)
    found = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(ids)))}
    scope = communes_in_scope(session, user)
    outside = {d.commune_id for d in found.values() if scope is not None and d.commune_id not in scope}
    if outside:
        count = sum(1 for d in found.values() if d.commune_id in outside)
        raise UserError(403, "stations.bulk_outside_area", count=count, names=area_names(session, outside))
    missing = [i for i in ids if i not in found or found[i].retired_at is not None]
    if missing:
        raise UserError(404, "stations.bulk_not_found", ids=", ".join(str(i) for i in missing[:20]))
    return [found[i] for i in ids]


async def bulk_diagnostic(
    link: StationCommands, session: Session, user: User, device_ids: Iterable[int], req: DiagnosticRequest
) -> list[DiagnosticCommandRow]:
    """Test tone, volume or LED test pattern on every selected station (`device.test`); a station
    of the wrong kind refuses the whole action too (diagnostics.check, before anything is stored)."""
    if req.action not in BULK_DIAGNOSTICS:
        raise UserError(422, "stations.bulk_unknown_action", action=req.action[:64],
                        allowed=", ".join(BULK_DIAGNOSTICS))
    stations = selected(session, user, Action.DEVICE_TEST, device_ids)
    return await diagnostics.send_many(link, session, user, stations, req)


def bulk_retire(broker: enrollment.BrokerAccounts, session: Session, user: User, device_ids: Iterable[int],
                now: datetime | None = None) -> list[Device]:
    """Retire every selected station (`device.manage`): all are checked first, then each is revoked
    (the broker drops its session). The caller clears their retained desired state."""
    stations = selected(session, user, Action.DEVICE_MANAGE, device_ids)
    return [enrollment.retire(broker, session, d.id, user.id, now, actor=user) for d in stations]


async def forget_desired(bus: CommandBus, retired: list[Device]) -> None:
    """Best effort after a retire: drop the stations' retained desired state from the broker.
    Nobody may read it any more (their accounts are gone); this only frees the broker."""
    if not bus.connected.is_set():
        return  # best effort: the account is gone, so nobody can read what stays retained
    for device in retired:
        with contextlib.suppress(Exception):
            await bus.publish(topics.desired(device.uid), b"", qos=1, retain=True)
