"""POST /api/v1/cap: an OASIS CAP 1.2 alert (XML) from an upstream warning system (docs/cap.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, require_role, runtime
from controller.api.params import Id, Limit
from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, roles_with
from controller.db.models import User
from controller.db.models_cap import CapAlertRecord
from controller.runtime import Runtime
from controller.schemas.cap import CapReceived, CapRecordFull, CapRecordOut
from controller.schemas.common import NOT_FOUND
from controller.services.cap import service

router = APIRouter(prefix="/api/v1", tags=["cap"])

ACCEPTED_TYPES = ("application/cap+xml", "application/xml", "text/xml")


async def _body(request: Request, limit: int) -> bytes:
    """The XML, read with a size limit (never the whole of an oversized upload)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UserError(413, "cap.too_large", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UserError(413, "cap.too_large", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/cap", status_code=201, response_model=CapReceived, response_model_exclude_unset=True,
             responses={200: {"model": CapReceived, "description": "an alert already received"}})
async def receive_cap(
    request: Request,
    user: User = Depends(require_role(*roles_with(Action.BROADCAST_EMERGENCY))),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ACCEPTED_TYPES:
        raise UserError(415, "cap.content_type", content_type=content_type or "-")
    raw = await _body(request, rt.settings.cap_max_bytes)
    if not raw.strip():
        raise UserError(400, "cap.empty")
    got = await service.receive(rt.emergency_deps, s, raw, user)
    body = service.record_json(got.record) | {"duplicate": got.duplicate}
    return JSONResponse(body, status_code=201 if got.created else 200)


@router.get("/cap", response_model=list[CapRecordOut], response_model_exclude_unset=True)
def list_cap(
    limit: Limit = 100, _: User = Depends(current_user), s: Session = Depends(db_session)
) -> list[dict[str, Any]]:
    q = select(CapAlertRecord).order_by(CapAlertRecord.id.desc()).limit(min(max(limit, 1), 1000))
    return [service.record_json(r) for r in s.scalars(q)]


@router.get("/cap/{alert_id}", response_model=CapRecordFull, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def get_cap(
    alert_id: Id, _: User = Depends(current_user), s: Session = Depends(db_session)
) -> dict[str, Any]:
    rec = s.get(CapAlertRecord, alert_id)
    if rec is None:
        raise NotFound("cap.not_found", id=alert_id)
    return service.record_json(rec, raw=True)
