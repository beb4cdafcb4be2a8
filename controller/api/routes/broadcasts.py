from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.api.deps import OPERATOR_ROLES, current_user, db_session, lang, require_role, runtime
from controller.api.params import Id, Limit, QueryId
from controller.api.refusals import policy_refusal
from controller.core.i18n import t
from controller.core.permissions import (
    communes_in_scope,
    in_scope,
)
from controller.db.models import Device, PlayLog, User
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.statuses import BroadcastStatus
from controller.runtime import Runtime
from controller.schemas.broadcasts import (
    Approved,
    BroadcastCreated,
    BroadcastDetail,
    BroadcastMoved,
    BroadcastOut,
    BroadcastPatch,
    PlayLogEntry,
    iso,
)
from controller.schemas.common import NOT_FOUND, POLICY_REFUSAL, ErrorBody, StatusOut
from controller.services import broadcasts
from controller.services.policy import PolicyViolation
from controller.usecases import broadcasts as usecase
from protocol.messages import Priority

router = APIRouter(prefix="/api/v1", tags=["broadcasts"])


def _is_emergency(req: broadcasts.BroadcastCreate) -> bool:
    """Emergencies (and priority broadcasts with an LED text or a repeat) take the group fan-out."""
    return req.priority is Priority.EMERGENCY or (
        req.priority is Priority.PRIORITY and (req.text is not None or req.repeat is not None))


@router.post("/broadcasts", status_code=201, response_model=BroadcastCreated,
             response_model_exclude_unset=True, responses=POLICY_REFUSAL)
async def create_broadcast(
    req: broadcasts.BroadcastCreate,
    request: Request,
    user: User = Depends(require_role(*OPERATOR_ROLES)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    created = await _create(req, request, user, s, rt)
    if not rt.broker_answering() and not isinstance(created, JSONResponse):
        created["warnings"] = [t("broker.unreachable_on_create", lang(request))]
    return created


async def _create(req: broadcasts.BroadcastCreate, request: Request, user: User, s: Session,
                  rt: Runtime) -> dict[str, Any]:  # fmt: skip
    if _is_emergency(req):
        try:
            # Answers once the PLAYs are handed to the broker: the PUBACK and the per-station
            # rows follow (services/emergency.py `_after_answer`), shown at `status_url`.
            started = await usecase.send_emergency(rt.emergency_deps, s, user, req)  # checks the area
        except PolicyViolation as exc:
            return policy_refusal(exc, lang(request))  # type: ignore[return-value]
        bc = started.broadcast
        em = s.get(EmergencyBroadcast, bc.id)
        return BroadcastOut.body(bc) | {"stations": started.stations, "approved": True,
                                     "policy": {"status": "exempt", "reason": "emergency"},
                                     "emergency": None if em is None else {
                                         "topics": em.topics, "lead_ms": em.lead_ms,
                                         "lead_basis": em.lead_basis, "publish_ms": started.publish_ms,
                                         "inline_bytes": em.inline_bytes,
                                         "volume": em.volume, "schedule_id": em.schedule_id,
                                         "led_message_id": em.led_message_id,
                                         "status_url": f"/api/v1/broadcasts/{bc.id}"}}
    return await run_in_threadpool(_create_normal, req, request, user, s)


def _create_normal(
    req: broadcasts.BroadcastCreate, request: Request, user: User, s: Session
) -> dict[str, Any]:
    try:
        created = usecase.send(s, user, req)  # checks the right and the area
    except PolicyViolation as exc:
        return policy_refusal(exc, lang(request))  # type: ignore[return-value]
    s.commit()  # the stations' dispatch is queued in this same transaction
    bc = created.broadcast
    return BroadcastOut.body(bc) | {"stations": len(created.device_ids),
                                    "approved": bc.status == BroadcastStatus.SCHEDULED,
                                    "policy": created.policy}


@router.post("/broadcasts/{broadcast_id}/approve", response_model=Approved, response_model_exclude_unset=True,
             responses=NOT_FOUND)
def approve_broadcast(
    broadcast_id: Id,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    usecase.approve(s, user, broadcast_id)
    s.commit()  # the stations' dispatch is queued in this same transaction
    return {"id": broadcast_id, "status": "scheduled", "approved": True}


@router.get("/broadcasts", response_model=list[BroadcastOut], response_model_exclude_unset=True)
def list_broadcasts(
    limit: Limit = 100, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> list[dict[str, Any]]:
    """Newest first: those reaching a station in the caller's area, and the caller's own."""
    return [BroadcastOut.body(b) for b in usecase.visible(s, user, limit)]


@router.get("/broadcasts/{broadcast_id}", response_model=BroadcastDetail, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def get_broadcast(
    broadcast_id: Id, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> dict[str, Any]:
    """The broadcast, every station's state (with the reason when it is not on air) and the
    measured start skew; for an emergency also who sent it, its topics, lead and timings.
    Another area's broadcast is not found; of one that reaches the caller's area only the
    caller's stations are told."""
    return usecase.detail(s, user, broadcast_id)


MAY_NOT_MOVE: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "started, cancelled, an emergency or a stream: may not move"}}


@router.patch("/broadcasts/{broadcast_id}", response_model=BroadcastMoved, response_model_exclude_unset=True,
              responses={**NOT_FOUND, **POLICY_REFUSAL, **MAY_NOT_MOVE})
def move_broadcast(
    broadcast_id: Id,
    req: BroadcastPatch,
    request: Request,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """A new start for a one-off broadcast that has not started yet, on the same stations. The
    use case checks the right, the area (another area's: 404; one reaching beyond the caller's
    area: 403), refuses what may not move (409), runs the policy at the new time (422 with
    `rule`, or an override with `override_reason`) and approval (no approval right: a draft)."""
    try:
        moved = usecase.reschedule(s, user, broadcast_id, req.start_at, override_reason=req.override_reason,
                                   tz=ZoneInfo(rt.settings.timezone))  # fmt: skip
    except PolicyViolation as exc:
        return policy_refusal(exc, lang(request))  # type: ignore[return-value]
    s.commit()  # the stations' dispatch is queued in this same transaction
    body = BroadcastOut.body(moved.broadcast) | {
        "stations": len(moved.device_ids), "approved": moved.approved, "policy": moved.policy,
        "previous_start_at": iso(moved.previous_start)}
    if not rt.broker_answering():
        body["warnings"] = [t("broker.unreachable_on_create", lang(request))]
    return body


@router.post("/broadcasts/{broadcast_id}/cancel", response_model=StatusOut, response_model_exclude_unset=True,
             responses=NOT_FOUND)
async def cancel_broadcast(
    broadcast_id: Id,
    user: User = Depends(require_role(*OPERATOR_ROLES)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    if s.get(EmergencyBroadcast, broadcast_id) is not None:
        await usecase.cancel_emergency(rt.emergency_deps, s, user, broadcast_id)  # only what they could send
        return {"id": broadcast_id, "status": "cancelled"}
    return await run_in_threadpool(_cancel_normal, broadcast_id, user, s)


def _cancel_normal(broadcast_id: int, user: User, s: Session) -> dict[str, Any]:
    usecase.cancel(s, user, broadcast_id)  # only what they could send
    s.commit()
    return {"id": broadcast_id, "status": "cancelled"}


@router.get("/play-log", response_model=list[PlayLogEntry], response_model_exclude_unset=True)
def play_log(
    broadcast_id: QueryId | None = None,
    device_id: QueryId | None = None,
    status: str | None = None,
    limit: Limit = 1000,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
) -> list[dict[str, Any]]:
    """Proof of play at the stations in the caller's area."""
    scope = communes_in_scope(s, user)
    q = select(PlayLog).order_by(PlayLog.id).limit(min(limit, 10000))
    if scope is not None:
        q = q.join(Device, Device.id == PlayLog.device_id).where(*in_scope(scope, Device.commune_id))
    if broadcast_id is not None:
        q = q.where(PlayLog.broadcast_id == broadcast_id)
    if device_id is not None:
        q = q.where(PlayLog.device_id == device_id)
    if status:
        q = q.where(PlayLog.status == status)
    return [
        {
            "device_id": r.device_id,
            "broadcast_id": r.broadcast_id,
            "item_id": r.item_id,
            "status": r.status,
            "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at),
            "start_error_ms": r.start_error_ms,
            "reason": r.reason,
        }
        for r in s.scalars(q)
    ]
