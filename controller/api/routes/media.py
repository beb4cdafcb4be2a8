"""Media over HTTP: uploads (normalized, transcoded, content-addressed), their metadata
with loudness and warnings, the project's generated chimes, and the files themselves."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.api.deps import OPERATOR_ROLES, current_user, db_session, lang, runtime
from controller.api.params import Limit
from controller.core.errors import NotFound, UserError
from controller.core.i18n import human_size, t
from controller.core.permissions import Action, can
from controller.db.models import Media, User
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND
from controller.schemas.media import AssetOut, MediaOut
from controller.services import audit
from controller.services.media import STORED_CONTENT_TYPE, ensure_assets, record_media

router = APIRouter(tags=["media"])
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@router.post("/api/v1/media", status_code=201, response_model=MediaOut, response_model_exclude_unset=True)
async def upload_media(
    request: Request,
    file: UploadFile = File(...),
    emergency: bool = False,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
    language: str = Depends(lang),
) -> dict[str, Any]:
    """``?emergency=true``: processed in the emergency lane (never behind ordinary uploads), with
    the shorter emergency length limit; only for accounts that may broadcast emergencies."""
    if emergency and not can(user, Action.BROADCAST_EMERGENCY):
        raise UserError(403, "media.emergency_forbidden")
    if user.role not in OPERATOR_ROLES:
        raise UserError(403, "auth.forbidden")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > rt.settings.media_max_bytes + 65536:
        raise UserError(413, "media.too_large", limit=human_size(rt.settings.media_max_bytes))
    name = file.filename or "upload"
    stored = await run_in_threadpool(partial(rt.media.ingest, emergency=emergency), file.file, name)
    existed = s.get(Media, stored.sha256) is not None
    row = record_media(s, stored, name, user.id, origin="upload")
    if not existed:
        audit.record(s, user.id, "media.upload", "media", stored.sha256, name=name,
                     loudness_lufs=stored.loudness_lufs)  # fmt: skip
        s.commit()
    return MediaOut.body(row, language)


@router.get("/api/v1/media", response_model=list[MediaOut], response_model_exclude_unset=True)
def list_media(
    limit: Limit = 200,
    _: User = Depends(current_user),
    s: Session = Depends(db_session),
    language: str = Depends(lang),
) -> list[dict[str, Any]]:
    q = select(Media).order_by(Media.created_at.desc()).limit(min(limit, 5000))
    return [MediaOut.body(m, language) for m in s.scalars(q)]


@router.get("/api/v1/media/assets", response_model=list[AssetOut], response_model_exclude_unset=True)
async def list_assets(
    _: User = Depends(current_user),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
    language: str = Depends(lang),
) -> list[dict[str, Any]]:
    """The generated chimes and test signals, made on first use, ready for a playlist."""
    assets = await run_in_threadpool(ensure_assets, rt.media, s)
    return [
        {**MediaOut.body(row, language), "name": name, "title": t(f"asset.{name}", language)}
        for name, row in assets
    ]


@router.get("/api/v1/media/{sha256}", response_model=MediaOut, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def media_info(
    sha256: str,
    _: User = Depends(current_user),
    s: Session = Depends(db_session),
    language: str = Depends(lang),
) -> dict[str, Any]:
    row = s.get(Media, sha256)
    if row is None:
        raise NotFound("media.not_found", sha256=sha256)
    return MediaOut.body(row, language)


@router.get("/media/{sha256}")
def serve_media(sha256: str, rt: Runtime = Depends(runtime)) -> FileResponse:
    """Content-addressed, immutable, Range-capable (agents resume broken downloads)."""
    if not SHA_RE.match(sha256):
        raise NotFound("media.not_found", sha256=sha256[:64])
    path = rt.media.path_for(sha256)
    if not path.exists():
        raise NotFound("media.not_found", sha256=sha256)
    return FileResponse(
        path,
        media_type=STORED_CONTENT_TYPE,
        headers={"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{sha256}"'},
    )
