from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, require_role, runtime
from controller.api.params import Id, Limit, QueryId
from controller.core.permissions import communes_in_scope, in_scope, visible_device
from controller.db.models import Device, DeviceEvent, User
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND, BodyId, ErrorBody
from controller.schemas.devices import (
    AreaCreate,
    AreaImport,
    AreaImportOut,
    AreaOut,
    Credentials,
    CredentialsBatch,
    DeviceEventOut,
    DeviceOut,
)
from controller.schemas.targets import note_deprecated
from controller.services import areas, devices, enrollment
from controller.services.area_import import ImportResult
from controller.usecases import areas as area_cases

router = APIRouter(prefix="/api/v1", tags=["devices"])


@router.get("/devices", response_model=list[DeviceOut], response_model_exclude_unset=True)
def list_devices(
    kind: str | None = None,
    commune_id: QueryId | None = None,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
) -> list[dict[str, Any]]:
    """The active stations in the caller's area (a commune operator sees only their commune's)."""
    scope = communes_in_scope(s, user)
    q = (select(Device).where(Device.retired_at.is_(None), *in_scope(scope, Device.commune_id))
         .order_by(Device.id))
    if kind:
        q = q.where(Device.kind == kind)
    if commune_id is not None:
        q = q.where(Device.commune_id == commune_id)
    return [devices.to_json(d) for d in s.scalars(q)]


@router.post("/devices", status_code=201, response_model=DeviceOut, response_model_exclude_unset=True)
def create_device(
    req: devices.DeviceCreate,
    user: User = Depends(require_role("admin", "technician")),
    s: Session = Depends(db_session),
) -> dict[str, Any]:
    device = devices.create(s, req, user.id, actor=user)  # 403 outside the technician's area
    s.commit()
    return devices.to_json(device)


class VillageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    village_id: BodyId | None  # null: no village named


@router.put("/devices/{device_id}/village", response_model=DeviceOut, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def set_village(
    device_id: Id, req: VillageIn, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> dict[str, Any]:
    """Name the village (thôn, tổ dân phố…) of the station's commune it stands in, or clear it;
    technicians and admins of that commune. A village of another commune is a 422."""
    device = devices.set_village(s, device_id, req.village_id, user)
    s.commit()
    return devices.to_json(device)


@router.post("/devices/{device_id}/credentials", status_code=201, response_model=Credentials,
             response_model_exclude_unset=True, responses=NOT_FOUND)
def issue_credentials(
    device_id: Id,
    user: User = Depends(require_role("admin")),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Rotate the station's broker password and return its agent configuration once."""
    device, password = devices.issue_credentials(s, device_id, user.id, actor=user)
    config = devices.agent_config(
        s, device, password,
        mqtt_host=rt.settings.agent_mqtt_host or rt.settings.mqtt_host,
        mqtt_port=rt.settings.agent_mqtt_port or rt.settings.mqtt_port,  # a stations' listener (issue 16)
        controller_url=rt.settings.base_url, public_key=rt.keys.public_text,
    )  # fmt: skip
    # broker account first (dynsec), then commit
    enrollment.commit_account(rt.broker_accounts, s, device, password)
    return {"device": devices.to_json(device), "agent_config": config}


class CredentialBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_ids: list[BodyId] = Field(min_length=1, max_length=enrollment.CSV_MAX_ROWS)


@router.post("/device-credentials", status_code=201, response_model=CredentialsBatch,
             response_model_exclude_unset=True)
def issue_credentials_batch(
    req: CredentialBatch,
    user: User = Depends(require_role("admin")),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Rotate many stations' broker passwords in one go (an import day, a simulated fleet):
    one transaction and one broker update instead of one per station (docs/scaling.md)."""
    issued = [devices.issue_credentials(s, device_id, user.id, actor=user)
              for device_id in dict.fromkeys(req.device_ids)]
    configs = [devices.agent_config(
        s, device, password,
        mqtt_host=rt.settings.agent_mqtt_host or rt.settings.mqtt_host,
        mqtt_port=rt.settings.agent_mqtt_port or rt.settings.mqtt_port,  # a stations' listener (issue 16)
        controller_url=rt.settings.base_url, public_key=rt.keys.public_text,
    ) for device, password in issued]  # fmt: skip
    enrollment.commit_accounts(rt.broker_accounts, s, issued)
    return {"issued": [{"device": devices.to_json(d), "agent_config": c}
                       for (d, _), c in zip(issued, configs, strict=True)]}


@router.get("/devices/{device_id}/events", response_model=list[DeviceEventOut],
            response_model_exclude_unset=True, responses=NOT_FOUND)
def device_events(
    device_id: Id,
    kind: str | None = None,
    limit: Limit = 200,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
) -> list[dict[str, Any]]:
    """What the station said, newest first (acks, rejections, proof of play, faults);
    another area's station is not found."""
    visible_device(s, user, device_id)
    q = (
        select(DeviceEvent)
        .where(DeviceEvent.device_id == device_id)
        .order_by(DeviceEvent.ts.desc())
        .limit(min(limit, 5000))
    )
    if kind:
        q = q.where(DeviceEvent.kind == kind)
    return [e.body | {"received_at": e.received_at.isoformat()} for e in s.scalars(q)]


@router.post("/areas", status_code=201, response_model=AreaOut, response_model_exclude_unset=True)
def create_area(
    req: AreaCreate,
    user: User = Depends(require_role("admin")),
    s: Session = Depends(db_session),
) -> dict[str, Any]:
    """A province, a commune directly under its province, a village under its commune, or a group
    of communes (`commune_ids`). `level: district` (deprecated) creates a group."""
    out = area_cases.create(s, user, areas.NewArea(**req.model_dump()))
    s.commit()
    return out


@router.post("/areas/import", response_model=AreaImportOut, responses={
    403: {"model": ErrorBody, "description": "not an admin"},
    422: {"model": ErrorBody, "description": "a province the packages do not know"}})
def import_areas(
    req: AreaImport, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> dict[str, Any]:
    """A province and all its communes, with official names, kinds, codes and former names, from
    the administrative-unit packages (as `communecast areas import`); admins only. Idempotent: a
    second run changes nothing. `dry_run` reports what would change and changes nothing."""
    result = area_cases.import_province(s, user, req.province, dry_run=req.dry_run)
    if req.dry_run:
        s.rollback()
    else:
        s.commit()
    return import_body(result, req.dry_run)


@router.get("/areas", response_model=list[AreaOut], response_model_exclude_unset=True)
def list_areas(
    level: Annotated[str | None, Query(pattern=r"^(province|group|commune|village|district)$")] = None,
    q: Annotated[str | None, Query(max_length=200, description="current or former name or code")] = None,
    parent_id: QueryId | None = None,
    code: Annotated[str | None, Query(max_length=32)] = None,
    user: User = Depends(current_user), s: Session = Depends(db_session)
) -> list[dict[str, Any]]:
    """The areas the caller's scope reaches; `q` finds by current or former name (diacritics and
    đ/Đ ignored: `q=hop hoa` finds Xã Tam Dương, formerly Thị trấn Hợp Hòa) or by code."""
    if level == "district":  # deprecated (one release): the districts are groups now
        note_deprecated(areas.DEPRECATED_DISTRICT_LEVEL)
        level = "group"
    return area_cases.listing(s, user, areas.AreaFilter(level=level, q=q, parent_id=parent_id, code=code))


def import_body(result: ImportResult, dry_run: bool) -> dict[str, Any]:
    return {"province": result.province, "province_id": result.province_id, "dry_run": dry_run,
            "created": result.created, "updated": result.updated, "unchanged": result.unchanged,
            "changes": result.changes[:500]}  # fmt: skip
