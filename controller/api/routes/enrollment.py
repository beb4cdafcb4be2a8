"""Enrollment codes, the agent's unauthenticated redeem call, retire and CSV import."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from controller.api.deps import db_session, lang, require_role, runtime
from controller.api.params import Id
from controller.core.errors import UserError
from controller.core.i18n import t
from controller.db.models import User
from controller.runtime import Runtime
from controller.schemas.common import ErrorBody, binary
from controller.schemas.devices import RetiredDevice
from controller.schemas.enrollment import Enrolled, EnrollmentCode, EnrollRequest, Imported
from controller.services import devices, enrollment
from controller.usecases import enrollment as enrolling
from protocol.signing import key_fingerprint

router = APIRouter(prefix="/api/v1", tags=["enrollment"])

TECHNICIANS = ("admin", "technician")


def _pepper(rt: Runtime) -> bytes:
    return enrollment.load_pepper(rt.enrollment_key_path)


def qr_payload(rt: Runtime, code: str) -> str:
    """What the QR code holds: the command to paste on the Pi. The key fingerprint lets the
    agent refuse a controller key swapped on the way (issue 16; docs/enrollment.md)."""
    return (f"communecast agent enroll --controller {rt.settings.base_url} --code {code} "
            f"--key-fingerprint {key_fingerprint(rt.keys.public)}")


def _issued_json(rt: Runtime, issued: enrollment.IssuedCode) -> dict[str, Any]:
    return EnrollmentCode.body(
        issued, expires_at_local=enrollment.people_time(issued.expires_at, rt.settings.timezone),
        command=qr_payload(rt, issued.code), key_fingerprint=key_fingerprint(rt.keys.public))


@router.post("/devices/{device_id}/enrollment", status_code=201, response_model=EnrollmentCode,
             response_model_exclude_unset=True)
def create_enrollment_code(
    device_id: Id,
    user: User = Depends(require_role(*TECHNICIANS)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """A one-time code for the technician; shown once, stored only as an HMAC."""
    ttl = timedelta(hours=rt.settings.enrollment_code_ttl_hours)
    issued = enrolling.issue_code(s, user, device_id, pepper=_pepper(rt), ttl=ttl)  # checks the area
    s.commit()
    return _issued_json(rt, issued)


@router.get("/enrollment/qr.png", response_class=Response,
            responses=binary("the enroll command line as a QR code", "image/png"))
def enrollment_qr(
    code: str = Query(min_length=1, max_length=32),
    _: User = Depends(require_role(*TECHNICIANS)),
    rt: Runtime = Depends(runtime),
) -> Response:
    """The code as a QR image (the enroll command line), for a phone or a printed label."""
    import segno

    normalized = enrollment.normalize(code)
    if normalized is None:
        raise UserError(400, "enroll.code_malformed")
    buf = io.BytesIO()
    segno.make(qr_payload(rt, enrollment.format_code(normalized)), error="m").save(
        buf, kind="png", scale=6, border=4
    )
    return Response(buf.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/enroll", response_model=Enrolled, response_model_exclude_unset=True)
def enroll(
    req: EnrollRequest,
    request: Request,
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
    language: str = Depends(lang),
) -> Any:
    """Unauthenticated on purpose: the code is the credential. Returns the agent config once."""
    source = request.client.host if request.client else "unknown"
    settings = rt.settings
    enrollment.check_rate(s, source, max_failures=settings.enrollment_max_failures,
                          window_s=settings.enrollment_failure_window_s)
    try:
        device, password = enrollment.redeem(s, req.code, source, pepper=_pepper(rt), tz=settings.timezone)
    except UserError as exc:
        s.rollback()
        enrollment.record_failure(s, source, window_s=settings.enrollment_failure_window_s)
        s.commit()
        return JSONResponse(
            {"detail": t(exc.key, language, **exc.params), "code": exc.key}, status_code=exc.status
        )
    config = enrollment.agent_config_for(rt.settings, rt.keys.public_text, s, device, password)
    body = {"device": devices.to_json(device), "agent_config": config}
    enrollment.commit_account(rt.broker_accounts, s, device, password)
    return body


@router.post("/devices/{device_id}/retire", response_model=RetiredDevice, response_model_exclude_unset=True)
def retire_device(
    device_id: Id,
    user: User = Depends(require_role(*TECHNICIANS)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Revoke at once: the broker disconnects the station and refuses it from now on."""
    # 403 outside their area
    device = enrollment.retire(rt.broker_accounts, s, device_id, user.id, actor=user)
    enrollment.clear_retained(rt.bus, device.uid)
    retired_at = device.retired_at.isoformat() if device.retired_at else None
    return devices.to_json(device) | {"retired_at": retired_at}


@router.post("/devices/import", status_code=201, response_model=Imported, response_model_exclude_unset=True,
             responses={422: {"model": ErrorBody, "description": "the CSV's problems, line by line"}})
async def import_devices(
    file: UploadFile = File(...),
    codes: bool = True,
    user: User = Depends(require_role(*TECHNICIANS)),
    rt: Runtime = Depends(runtime),
    language: str = Depends(lang),
) -> Any:
    """Stations from a CSV (all or none), each with its enrollment code unless codes=false."""
    data = await file.read(8 * 1024 * 1024 + 1)
    if len(data) > 8 * 1024 * 1024:
        raise UserError(413, "device.csv_too_large", limit=enrollment.CSV_MAX_ROWS)
    with rt.db.session() as s:
        requests, problems = enrollment.parse_csv(s, data)
        if problems:
            return JSONResponse({
                "detail": t("device.csv_invalid", language), "code": "device.csv_invalid",
                "errors": [{"line": p.line, "problem": p.problem} for p in problems],
            }, status_code=422)  # fmt: skip
        ttl = timedelta(hours=rt.settings.enrollment_code_ttl_hours)
        pepper = _pepper(rt)
        created = []
        for req in requests:
            device = devices.create(s, req, user.id, actor=user)  # one row outside the area: none stored
            row = devices.to_json(device)
            if codes:
                row["enrollment"] = _issued_json(rt, enrollment.issue_code(s, device.id, user.id,
                                                                           pepper=pepper, ttl=ttl))
            created.append(row)
        s.commit()
    return {"created": created}
