"""Stations in bulk over the API (issue 20): the panel's stations-list actions and CSV export,
through the same use case (controller/usecases/stations.py), station by station."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, lang, runtime
from controller.api.params import QueryId
from controller.core.i18n import t
from controller.db.models import User
from controller.runtime import Runtime
from controller.schemas.common import ErrorBody, binary
from controller.schemas.stations_bulk import BULK_ACTIONS, BulkOut, BulkRequest
from controller.services.station_filter import STATES
from controller.usecases import stations

router = APIRouter(prefix="/api/v1", tags=["devices"])

Caller = Annotated[User, Depends(current_user)]
Db = Annotated[Session, Depends(db_session)]
Rt = Annotated[Runtime, Depends(runtime)]


@router.post("/devices/bulk", response_model=BulkOut, response_model_exclude_unset=True, responses={
    403: {"model": ErrorBody, "description": "the role may not test (or retire) stations"},
    422: {"model": ErrorBody, "description": "no station, too many, or a volume missing"},
    503: {"model": ErrorBody, "description": "the broker is down: nothing was sent"}})
async def bulk_action(req: BulkRequest, request: Request, user: Caller, s: Db, rt: Rt) -> dict[str, Any]:
    """One action on each chosen station, as the panel's stations list does (technicians and
    admins; a viewer or an operator is refused whole, 403). Each station is done or refused with
    why: not found or not in the caller's area (the same answer for both: nothing about another
    area's station is revealed, nothing is sent to it), not a loudspeaker for a tone or volume,
    not an LED board for a test pattern. A retire needs `confirm: true`; without it nothing
    changes and `to_confirm` lists what would stop."""
    action = BULK_ACTIONS[req.action]
    outcomes = await stations.bulk_each(rt.station_commands, rt.broker_accounts, s, user, action,
                                        req.device_ids, volume=req.volume, confirm=req.confirm)  # fmt: skip
    s.commit()
    if action == "retire" and req.confirm:
        await stations.forget_desired(rt.station_commands.bus,
                                      [o.device for o in outcomes if o.result == "done" and o.device])
    language = lang(request)
    return {"action": req.action, "confirmed": req.confirm if action == "retire" else True,
            "done": sum(o.result == "done" for o in outcomes),
            "refused": sum(o.result == "refused" for o in outcomes),
            "results": [stations.outcome_json(o, language, t) for o in outcomes]}  # fmt: skip


@router.get("/devices/export.csv", response_class=Response, responses={
    **binary("the caller's stations as CSV (UTF-8 with a BOM, the import's columns)", "text/csv"),
    422: {"model": ErrorBody, "description": "an unknown state"}})
def export_csv(
    user: Caller,
    s: Db,
    q: Annotated[str, Query(max_length=100)] = "",
    commune_id: QueryId | None = None,
    group_id: QueryId | None = None,
    state: Annotated[str, Query(pattern="^(" + "|".join(STATES) + ")?$")] = "",
    kind: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """The caller's active stations (their area only) as CSV: the file the panel's stations list
    exports (`/stations.csv`), with the same optional filters; it imports again."""
    body = stations.export_csv(s, user, stations.ListFilter(q=q, commune=commune_id, group=group_id,
                                                            state=state, kind=kind))
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="tram-loa.csv"'})
