"""Remote diagnostics: validate, sign and send one closed-enum action; fold its result back in.

The controller never forwards free text to a station: the action must be one of
protocol.ops.DiagnosticAction and its params must fit that action's bounded model, here
(422 for the operator) and again on the station (which reports `rejected` otherwise).
The command row is committed before the publish, so a result that comes back within
milliseconds always finds it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, can_act_on_device, covers
from controller.db.models import Device, User
from controller.db.models_ops import DiagnosticCommandRow
from controller.db.statuses import DeviceKind, DiagnosticState
from controller.schemas.diagnostics import DiagnosticRequest
from controller.services import audit
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import CommandKind, Event, EventKind, Priority
from protocol.ops import PARAMS, DiagnosticAction, is_known_action

if TYPE_CHECKING:
    from controller.services.station_commands import StationCommands

COMMAND_TTL = timedelta(minutes=2)  # a station offline longer than this never runs it late
SPEAKER_ONLY = {DiagnosticAction.TEST_TONE, DiagnosticAction.RELAY_CLICK, DiagnosticAction.SET_VOLUME}
LED_ONLY = {DiagnosticAction.LED_TEST_PATTERN}
OPS_EVENTS = (EventKind.DIAGNOSTIC_RESULT, EventKind.REJECTED, EventKind.UPDATE_APPLIED,
              EventKind.UPDATE_ROLLED_BACK, EventKind.UPDATE_REFUSED)


def _device_for(s: Session, user: User, device_id: int, action: Action) -> Device:
    device = s.get(Device, device_id)
    if device is None or device.retired_at is not None:
        raise NotFound("diag.device_not_found", id=device_id)
    if action is Action.VIEW and not covers(s, user, device.commune_id):
        raise NotFound("diag.device_not_found", id=device_id)  # a read: do not reveal it exists
    if not can_act_on_device(s, user, action, device):
        raise UserError(403, "ops.forbidden_area", id=device_id)
    return device


def check(device: Device, req: DiagnosticRequest) -> tuple[DiagnosticAction, dict[str, Any]]:
    """The action and its params with defaults filled in, or a 422 the operator can act on."""
    if not is_known_action(req.action):
        raise UserError(422, "diag.unknown_action", action=req.action[:64],
                        allowed=", ".join(a.value for a in DiagnosticAction))
    action = DiagnosticAction(req.action)
    led = device.kind == DeviceKind.LED
    if (led and action in SPEAKER_ONLY) or (not led and action in LED_ONLY):
        raise UserError(422, "diag.not_for_kind", action=action.value, kind=device.kind)
    try:
        params = PARAMS[action].model_validate(req.params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise UserError(422, "diag.bad_params", action=action.value,
                         error=f"{where}: {first.get('msg')}") from exc
    return action, params.model_dump(mode="json")


async def send(
    link: StationCommands, s: Session, user: User, device_id: int, req: DiagnosticRequest
) -> DiagnosticCommandRow:
    device = _device_for(s, user, device_id, Action.DEVICE_TEST)
    action, params = check(device, req)
    if not link.bus.connected.is_set():
        raise UserError(503, "ops.broker_down")
    body = {"action": action.value, "params": params}
    env = Envelope.new(CommandKind.DIAGNOSTIC, f"dev/{device.uid}", body, ttl=COMMAND_TTL,
                       priority=Priority.FILLER)
    row = DiagnosticCommandRow(id=env.id, device_id=device.id, action=action.value, params=params,
                               state=DiagnosticState.PENDING, created_by=user.id, expires_at=env.expires_at)
    s.add(row)
    audit.record(s, user.id, f"device.diagnostic.{action.value}", "device", device.id,
                 command_id=env.id, params=params)
    s.commit()
    try:
        await link.bus.publish(topics.cmd(device.uid), SignedMessage.seal(env, link.signer).to_bytes(), qos=1)
    except ConnectionError as exc:
        row.state, row.result, row.finished_at = "error", {"error": "not_sent"}, datetime.now(UTC)
        s.commit()
        raise UserError(503, "ops.broker_down") from exc
    return row


async def send_many(
    link: StationCommands, s: Session, user: User, stations: list[Device], req: DiagnosticRequest
) -> list[DiagnosticCommandRow]:
    """One action on many stations already checked by the caller (usecases/stations.py): every
    station's kind and params are checked before anything is stored, all rows are committed in
    one transaction, then published. So a refusal leaves nothing behind and nothing is sent."""
    checked = [(device, *check(device, req)) for device in stations]
    if not link.bus.connected.is_set():
        raise UserError(503, "ops.broker_down")
    sealed: list[tuple[Device, DiagnosticCommandRow, bytes]] = []
    for device, action, params in checked:
        body = {"action": action.value, "params": params}
        env = Envelope.new(CommandKind.DIAGNOSTIC, f"dev/{device.uid}", body, ttl=COMMAND_TTL,
                           priority=Priority.FILLER)
        row = DiagnosticCommandRow(id=env.id, device_id=device.id, action=action.value, params=params,
                                   state=DiagnosticState.PENDING, created_by=user.id,
                                   expires_at=env.expires_at)
        s.add(row)
        audit.record(s, user.id, f"device.diagnostic.{action.value}", "device", device.id,
                     command_id=env.id, params=params, bulk=len(stations))
        sealed.append((device, row, SignedMessage.seal(env, link.signer).to_bytes()))
    s.commit()
    for device, row, payload in sealed:
        try:
            await link.bus.publish(topics.cmd(device.uid), payload, qos=1)
        except ConnectionError:  # the broker went away mid-way: say so on the rows not sent
            row.state, row.result, row.finished_at = "error", {"error": "not_sent"}, datetime.now(UTC)
    s.commit()
    return [row for _d, row, _p in sealed]


def get(s: Session, user: User, device_id: int, command_id: str) -> DiagnosticCommandRow:
    _device_for(s, user, device_id, Action.VIEW)
    row = s.get(DiagnosticCommandRow, command_id)
    if row is None or row.device_id != device_id:
        raise NotFound("diag.not_found", id=command_id[:64])
    return row


def recent(s: Session, user: User, device_id: int, limit: int = 50) -> list[DiagnosticCommandRow]:
    _device_for(s, user, device_id, Action.VIEW)
    q = (select(DiagnosticCommandRow).where(DiagnosticCommandRow.device_id == device_id)
         .order_by(DiagnosticCommandRow.created_at.desc()).limit(min(limit, 500)))
    return list(s.scalars(q))


def to_json(row: DiagnosticCommandRow, now: datetime | None = None) -> dict[str, Any]:
    state = row.state
    if state == DiagnosticState.PENDING and row.expires_at <= (now or datetime.now(UTC)):
        state = "expired"  # never answered within its validity: the station will not run it now
    return {
        "id": row.id, "device_id": row.device_id, "action": row.action, "params": row.params,
        "state": state, "result": row.result, "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }  # fmt: skip


def apply_events(s: Session, events: list[tuple[int, Event]]) -> None:
    """Called by ingest inside its batch transaction: results and rejections of our commands."""
    from controller.services import updates

    kinds = (EventKind.DIAGNOSTIC_RESULT, EventKind.REJECTED)
    refs = {ev.ref for _, ev in events if ev.ref and ev.kind in kinds}
    if refs:
        query = select(DiagnosticCommandRow).where(DiagnosticCommandRow.id.in_(refs))
        rows = {r.id: r for r in s.scalars(query)}
        for device_id, ev in events:
            row = rows.get(ev.ref or "")
            if row is None or row.device_id != device_id or row.state != DiagnosticState.PENDING:
                continue
            if ev.kind is EventKind.DIAGNOSTIC_RESULT:
                row.state = DiagnosticState.DONE if ev.detail.get("ok") else DiagnosticState.ERROR
                row.result = ev.detail
            else:  # the station refused the command itself (unsupported, bad signature, expired...)
                row.state = DiagnosticState.REJECTED
                row.result = {"ok": False, "error": ev.reason, "message": ev.detail.get("message")}
            row.finished_at = ev.ts
    updates.apply_events(s, events)
