"""Emergency presets over the API (issue 20): the same use case as the panel's presets page
(controller/usecases/presets.py): who reads which province's, who edits, the checks and their
messages are there."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session
from controller.api.params import Id, QueryId
from controller.db.models import User
from controller.db.models_alerts import EmergencyPreset
from controller.schemas.common import NOT_FOUND, ErrorBody
from controller.schemas.presets import PresetCreate, PresetOut, PresetUpdate
from controller.usecases import presets

router = APIRouter(prefix="/api/v1", tags=["emergency"])

Caller = Annotated[User, Depends(current_user)]
Db = Annotated[Session, Depends(db_session)]
WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "no right to edit this province's presets"},
    **NOT_FOUND,
    422: {"model": ErrorBody, "description": "a field too long or empty, an unknown voice or repeat"},
}


def _out(entry: presets.Entry, province_id: int | None, editable: bool) -> dict[str, Any]:
    p, stored = entry.preset, entry.id is not None
    return {"id": entry.id, "key": p.key, "province_id": entry.area_id if stored else province_id,
            "source": entry.source, "label": p.label, "title": p.title, "text": p.text,
            "led_text": p.led_text, "voice": p.voice, "repeat_hours": p.repeat_hours,
            "editable": editable}  # fmt: skip


def _row_out(s: Session, user: User, row: EmergencyPreset) -> dict[str, Any]:
    source = "installation" if row.area_id is None else "province"
    entry = presets.Entry(presets.Preset(row.key, row.label, row.title, row.text, row.led_text, row.voice,
                                         row.repeat_hours), source, row.id, row.area_id)  # fmt: skip
    return _out(entry, row.area_id, presets.may_edit(s, user, row.area_id))


@router.get("/emergency-presets", response_model=list[PresetOut], response_model_exclude_unset=True,
            responses=NOT_FOUND)
def list_presets(user: Caller, s: Db, province_id: QueryId | None = None) -> list[dict[str, Any]]:
    """The presets the caller's emergency form offers, in the form's order: their province's
    (an unscoped admin: `province_id`'s, or the installation-wide set). Another province is 404."""
    province, entries = presets.entries(s, user, province_id)
    editable = presets.may_edit(s, user, province)
    return [_out(e, province, editable) for e in entries]


@router.post("/emergency-presets", status_code=201, response_model=PresetOut,
             response_model_exclude_unset=True, responses={**WRITE_REFUSALS, 409: {
                 "model": ErrorBody, "description": "the province has its own version: PATCH it"}})
def create_preset(req: PresetCreate, user: Caller, s: Db) -> dict[str, Any]:
    """A province's own version of one preset key (admins and that province's operators)."""
    province = req.province_id if "province_id" in req.model_fields_set else presets.default_province(s, user)
    values = presets.Preset(req.key, req.label, req.title, req.text, req.led_text, req.voice,
                            req.repeat_hours)
    row = presets.create(s, user, province, values)
    s.commit()
    return _row_out(s, user, row)


@router.patch("/emergency-presets/{preset_id}", response_model=PresetOut, response_model_exclude_unset=True,
              responses=WRITE_REFUSALS)
def update_preset(preset_id: Id, req: PresetUpdate, user: Caller, s: Db) -> dict[str, Any]:
    """Change some fields of a stored preset (the `id` of a `province` or `installation` one)."""
    row = presets.update(s, user, preset_id, req.model_dump(exclude_unset=True))
    s.commit()
    return _row_out(s, user, row)


@router.delete("/emergency-presets/{preset_id}", status_code=204, response_class=Response,
               responses={403: WRITE_REFUSALS[403], **NOT_FOUND})
def delete_preset(preset_id: Id, user: Caller, s: Db) -> Response:
    """Drop a stored preset: the installation-wide (or built-in) text is offered again."""
    presets.reset(s, user, preset_id)
    s.commit()
    return Response(status_code=204)
