"""Reports: play-log exports (CSV, XLSX) and monthly minutes per commune."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.api.deps import db_session, lang, require_role, runtime
from controller.api.params import MAX_ID, Limit
from controller.core.errors import UserError
from controller.core.permissions import Action, communes_in_scope, roles_with
from controller.db.models import AuditEntry, User
from controller.schemas.common import NOT_FOUND, binary
from controller.schemas.reports import AuditEntryOut, MonthlyRow
from controller.services import reports

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
VIEWERS = roles_with(Action.REPORT_VIEW)


def _filters(request: Request, s: Session, user: User) -> reports.Filters:
    """From/to/commune from the query string, always limited to the caller's area: another
    commune's rows are left out (an empty report), as a list would."""
    q = request.query_params
    zone = ZoneInfo(runtime(request).settings.timezone)

    def when(key: str) -> datetime | None:
        text = q.get(key)
        if not text:
            return None
        if "T" in text and " " in text:
            text = text.replace(" ", "+")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise UserError(422, "request.invalid") from None
        return dt if dt.tzinfo else dt.replace(tzinfo=zone)  # a bare date is a local day

    commune = q.get("commune")
    try:
        commune_id = int(commune) if commune else None
    except ValueError:
        raise UserError(422, "request.invalid") from None
    if commune_id is not None and not 1 <= commune_id <= MAX_ID:  # ids are 32-bit INTEGER keys
        raise UserError(422, "request.invalid")
    scope = communes_in_scope(s, user)
    return reports.Filters(when("from"), when("to"), commune_id, None if scope is None else frozenset(scope),
                           zone)


@router.get("/play-log.{fmt}", response_class=Response, responses={
    **binary("the play log as CSV (play-log.csv) or a workbook (play-log.xlsx)", "text/csv",
                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    **NOT_FOUND})
def play_log_export(
    fmt: str, request: Request, user: User = Depends(require_role(*VIEWERS)),
    s: Session = Depends(db_session),
) -> Response:
    f, language = _filters(request, s, user), lang(request)
    if fmt == "csv":
        return Response(reports.to_csv(s, f, language), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="play-log.csv"'})
    if fmt == "xlsx":
        return Response(reports.to_xlsx(s, f, language),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": 'attachment; filename="play-log.xlsx"'})
    raise UserError(404, "report.bad_format")


@router.get("/monthly", response_model=list[MonthlyRow], response_model_exclude_unset=True)
def monthly(
    request: Request, user: User = Depends(require_role(*VIEWERS)), s: Session = Depends(db_session),
) -> list[dict[str, Any]]:
    return reports.monthly(s, _filters(request, s, user))


@router.get("/audit", response_model=list[AuditEntryOut], response_model_exclude_unset=True)
def audit_trail(
    object_type: str | None = None, object_id: str | None = None, action: str | None = None,
    limit: Limit = 500, _: User = Depends(require_role(*roles_with(Action.AUDIT_VIEW))),
    s: Session = Depends(db_session),
) -> list[dict[str, Any]]:
    """Who did what (create / approve / schedule / send / override), newest last."""
    q = select(AuditEntry, User.username).outerjoin(User, User.id == AuditEntry.user_id)
    q = q.order_by(AuditEntry.id)
    if object_type:
        q = q.where(AuditEntry.object_type == object_type)
    if object_id:
        q = q.where(AuditEntry.object_id == object_id)
    if action:
        q = q.where(AuditEntry.action == action)
    return [
        {"id": e.id, "ts": e.ts.isoformat(), "user_id": e.user_id, "username": name, "action": e.action,
         "object_type": e.object_type, "object_id": e.object_id, "detail": e.detail}
        for e, name in s.execute(q.limit(min(limit, 5000))).all()
    ]
