"""Agent updates: upload a wheel (signed manifest made here), roll it out, watch each station."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.api.deps import db_session, require_role, runtime
from controller.api.params import Id
from controller.core.errors import NotFound
from controller.core.permissions import Action, roles_with
from controller.db.models import User
from controller.db.models_ops import UpdateBundle
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND
from controller.schemas.updates import RolloutResult, UpdateOut
from controller.services import updates

router = APIRouter(tags=["updates"])
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
MANAGE = roles_with(Action.DEVICE_MANAGE)


@router.post("/api/v1/updates", status_code=201, response_model=UpdateOut, response_model_exclude_unset=True)
async def upload_update(
    file: UploadFile = File(...),
    version: str | None = Form(default=None),
    min_agent_version: str = Form(default="0.0.0"),
    user: User = Depends(require_role(*MANAGE)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """A communecast wheel in; a release with a manifest signed by the controller key out."""
    row = await run_in_threadpool(updates.create, rt.signer, rt.settings.data_dir, s, user, file.file,
                                  file.filename or "", version, min_agent_version)
    return updates.to_json(row, [])


@router.get("/api/v1/updates", response_model=list[UpdateOut], response_model_exclude_unset=True)
def list_updates(
    user: User = Depends(require_role(*MANAGE)), s: Session = Depends(db_session)
) -> list[dict[str, Any]]:
    """Every release (they are fleet-wide), each with its stations in the caller's area."""
    rows = s.scalars(select(UpdateBundle).order_by(UpdateBundle.created_at.desc()))
    return [updates.to_json(r, updates.rollouts_of(s, r.id, user)) for r in rows]


@router.get("/api/v1/updates/{bundle_id}", response_model=UpdateOut, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def get_update(
    bundle_id: Id, user: User = Depends(require_role(*MANAGE)), s: Session = Depends(db_session)
) -> dict[str, Any]:
    """The release and each station's state in the caller's area: sent, applied, rolled_back, refused."""
    return updates.to_json(updates.get(s, bundle_id), updates.rollouts_of(s, bundle_id, user))


@router.post("/api/v1/updates/{bundle_id}/rollout", status_code=202, response_model=RolloutResult,
             response_model_exclude_unset=True, responses=NOT_FOUND)
async def rollout_update(
    bundle_id: Id,
    req: updates.RolloutRequest,
    user: User = Depends(require_role(*MANAGE)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    return await updates.rollout(rt.station_commands, s, user, bundle_id, req)


@router.get("/updates/files/{sha256}")
def serve_wheel(sha256: str, rt: Runtime = Depends(runtime)) -> FileResponse:
    """Content-addressed and immutable; agents check the hash the signed manifest names."""
    if not SHA_RE.match(sha256):
        raise NotFound("update.not_found", id=sha256[:64])
    path = updates.wheel_path(rt.settings.data_dir, sha256)
    if not path.exists():
        raise NotFound("update.not_found", id=sha256)
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{sha256}"'}
    return FileResponse(path, media_type="application/octet-stream", headers=headers)
