"""Stations in bulk (issue 20, item 5): one action on many selected stations, and the list as CSV.

Two ways, one set of checks (`_sort`: the right, then each station: known, active, in the
caller's area, of the right kind):

* the panel's stations list, all or nothing (`selected`, `bulk_diagnostic`, `bulk_retire`):
  one station outside the caller's area refuses the whole action and leaves all of them
  untouched. The refusal names the communes, not the stations: a crafted form must not reveal
  another area's station names.
* the API's `POST /api/v1/devices/bulk`, station by station (`bulk_each`): the stations that
  pass are acted on, each other one is refused with why. An unknown, retired or another area's
  station is the same "not found or not yours" (nothing about it is revealed, nothing is sent).

A role without the right (a viewer, an operator for device tests) is refused whole (403) either
way. `export_csv` is the panel's and the API's CSV of the caller's stations.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.core.permissions import Action, area_names, communes_in_scope
from controller.db.models import Area, Device, User
from controller.db.models_ops import DiagnosticCommandRow
from controller.schemas.diagnostics import DiagnosticRequest
from controller.services import diagnostics, enrollment
from controller.services.station_commands import CommandBus, StationCommands
from controller.services.station_filter import STATES, station_filter
from controller.usecases.access import require
from protocol import topics

MAX_SELECTED = 500  # a page of the list is 50; "select all matching" stays bounded
BULK_DIAGNOSTICS = ("test_tone", "set_volume", "led_test_pattern")
EXPORT_LIMIT = 20000
EXPORT_COLUMNS = ("name", "kind", "commune_code", "commune_id", "commune", "lat", "lon", "tags", "uid",
                  "online")


@dataclass
class _Sorted:
    """The chosen ids, once each, in the order given: the stations that may be acted on, the ones
    outside the caller's area and the unknown or retired ones."""

    ids: list[int]
    ok: dict[int, Device] = field(default_factory=dict)
    outside: dict[int, Device] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)


def _sort(session: Session, user: User, action: Action, device_ids: Iterable[int]) -> _Sorted:
    """403 if the role lacks `action`, 422 if none or too many were chosen; else each station sorted."""
    require(user, action)
    ids = list(dict.fromkeys(device_ids))
    if not ids:
        raise UserError(422, "stations.none_selected")
    if len(ids) > MAX_SELECTED:
        raise UserError(422, "stations.too_many", limit=MAX_SELECTED)
    found = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(ids)))}
    scope = communes_in_scope(session, user)
    out = _Sorted(ids)
    for i in ids:
        device = found.get(i)
        if device is not None and scope is not None and device.commune_id not in scope:
            out.outside[i] = device
        elif device is None or device.retired_at is not None:
            out.missing.append(i)
        else:
            out.ok[i] = device
    return out


def selected(session: Session, user: User, action: Action, device_ids: Iterable[int]) -> list[Device]:
    """The selected active stations, in the order given, once each; or a refusal for all of them:
    403 if the role lacks `action` or any station lies outside the caller's area, 404 if any is
    unknown or retired, 422 if none or too many were chosen."""
    chosen = _sort(session, user, action, device_ids)
    if chosen.outside:
        communes = {d.commune_id for d in chosen.outside.values()}
        raise UserError(403, "stations.bulk_outside_area", count=len(chosen.outside),
                        names=area_names(session, communes))
    if chosen.missing:
        raise UserError(404, "stations.bulk_not_found", ids=", ".join(str(i) for i in chosen.missing[:20]))
    return [chosen.ok[i] for i in chosen.ids]


# -- station by station (the API) ---------------------------------------------------------------------
BULK_ACTIONS = (*BULK_DIAGNOSTICS, "retire")


@dataclass
class Outcome:
    """One station's part in a bulk action: `done`, `to_confirm` (a retire not confirmed yet:
    nothing changed) or `refused` with a refusal (`error`). `device` only when the caller may
    see it (never for another area's or an unknown station)."""

    device_id: int
    result: str
    device: Device | None = None
    error: UserError | None = None
    command_id: str | None = None


def _not_yours(device_id: int) -> UserError:
    return UserError(404, "stations.not_found_or_not_yours", id=device_id)


def _kind_refusal(action: str, device_id: int) -> UserError:
    if action == "led_test_pattern":
        return UserError(422, "stations.not_an_led_board", id=device_id)
    return UserError(422, "stations.not_a_speaker", id=device_id)


async def bulk_each(link: StationCommands, broker: enrollment.BrokerAccounts, session: Session, user: User,
                    action: str, device_ids: Iterable[int], *, volume: int | None = None,
                    confirm: bool = False, now: datetime | None = None) -> list[Outcome]:  # fmt: skip
    """`action` on each chosen station that passes the checks, a refusal with why for each other.

    test_tone / set_volume / led_test_pattern need `device.test`, retire `device.manage` (a role
    without it: 403 for the whole call). A retire without `confirm` only lists what would stop
    (`to_confirm`), like the panel's confirmation page. After a retire the caller clears the
    retired stations' retained desired state (`forget_desired`)."""
    if action not in BULK_ACTIONS:
        raise UserError(422, "stations.bulk_unknown_action", action=action[:64],
                        allowed=", ".join(BULK_ACTIONS))
    right = Action.DEVICE_MANAGE if action == "retire" else Action.DEVICE_TEST
    chosen = _sort(session, user, right, device_ids)
    outcomes: dict[int, Outcome] = {
        i: Outcome(i, "refused", error=_not_yours(i)) for i in [*chosen.outside, *chosen.missing]
    }
    if action == "retire":
        for i, device in chosen.ok.items():
            if confirm:
                enrollment.retire(broker, session, device.id, user.id, now, actor=user)
            outcomes[i] = Outcome(i, "done" if confirm else "to_confirm", device=device)
        return [outcomes[i] for i in chosen.ids]
    if action == "set_volume" and volume is None:
        raise UserError(422, "stations.volume_missing")
    req = DiagnosticRequest(action=action, params={"volume": volume} if action == "set_volume" else {})
    fitting: list[Device] = []
    for i, device in chosen.ok.items():
        try:
            diagnostics.check(device, req)  # the kind (and the params: a bad volume refuses the call)
        except UserError as exc:
            if exc.key != "diag.not_for_kind":
                raise
            outcomes[i] = Outcome(i, "refused", device=device, error=_kind_refusal(action, i))
            continue
        fitting.append(device)
    rows = await diagnostics.send_many(link, session, user, fitting, req) if fitting else []
    for device, row in zip(fitting, rows, strict=True):
        outcomes[device.id] = Outcome(device.id, "done", device=device, command_id=row.id)
    return [outcomes[i] for i in chosen.ids]


# -- CSV export -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListFilter:
    """The stations list's filters (the panel's form, the API's query): all optional."""

    q: str = ""
    commune: int | None = None
    group: int | None = None
    state: str = ""
    kind: str = ""


def export_csv(session: Session, user: User, f: ListFilter) -> bytes:
    """The caller's active stations (their area only) matching `f`, as CSV in UTF-8 with a BOM
    (Excel then reads the diacritics right); its columns are the import's, so an exported file
    imports again. At most EXPORT_LIMIT rows, by id."""
    require(user, Action.VIEW)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    state = f.state if f.state in STATES else ""
    cond = station_filter(f.q, f.commune, state, f.kind, communes_in_scope(session, user), f.group)
    q = (select(Device, Area.code, Area.name).join(Area, Area.id == Device.commune_id)
         .where(*cond).order_by(Device.id).limit(EXPORT_LIMIT))
    for d, code, commune in session.execute(q):
        writer.writerow([d.name, d.kind, code or "", d.commune_id, commune,
                         "" if d.lat is None else d.lat, "" if d.lon is None else d.lon,
                         ";".join(d.tags or []), d.uid, "1" if d.online else "0"])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def outcome_json(o: Outcome, lang: str, translate: Any) -> dict[str, Any]:
    """One outcome as the API's reply shows it (`translate`: core.i18n.t)."""
    body: dict[str, Any] = {"device_id": o.device_id, "result": o.result}
    if o.device is not None:
        body["name"] = o.device.name
        body["kind"] = o.device.kind
    if o.command_id is not None:
        body["command_id"] = o.command_id
    if o.error is not None:
        body |= {"status": o.error.status, "code": o.error.key,
                 "detail": translate(o.error.key, lang, **o.error.params)}
    return body


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
