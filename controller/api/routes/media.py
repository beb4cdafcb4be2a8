"""Media over HTTP: uploads (normalized, transcoded, content-addressed), their metadata
with loudness and warnings, the project's generated chimes, and the files themselves."""

from __future__ import annotations

import re
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from controller.api.deps import OPERATOR_ROLES, current_user, db_session, lang, runtime
from controller.api.params import Limit
from controller.core.errors import NotFound, UserError
from controller.core.i18n import human_size, t
from controller.core.permissions import Action, can
from controller.db.models import Media, User
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND, ErrorBody
from controller.schemas.media import AssetOut, MediaOut, MediaPatch
from controller.services import audit, metrics
from controller.services.media import STORED_CONTENT_TYPE, ensure_assets, record_media
from controller.usecases import media as library

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
    q: Annotated[str | None, Query(max_length=200, description="title, file name, tag, hash prefix")] = None,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
    language: str = Depends(lang),
) -> list[dict[str, Any]]:
    """The media library: newest first, what the caller's area uploaded (everything for an
    unscoped user) and the generated chimes; `q` searches, diacritics ignored."""
    return [MediaOut.body(m, language) for m in library.listing(s, user, q, limit)]


@router.patch("/api/v1/media/{sha256}", response_model=MediaOut, response_model_exclude_unset=True,
              responses=NOT_FOUND)
def change_media(
    sha256: str, req: MediaPatch, user: User = Depends(current_user), s: Session = Depends(db_session),
    language: str = Depends(lang),
) -> dict[str, Any]:
    """Rename, tag, or set / clear an expiry (after it, no new broadcast or schedule may use it)."""
    row = library.change(s, user, sha256, library.MediaChange(
        title=req.title, tags=req.tags, expires_at=req.expires_at,
        clear_expiry="expires_at" in req.model_fields_set and req.expires_at is None))  # fmt: skip
    s.commit()
    return MediaOut.body(row, language)


@router.delete("/api/v1/media/{sha256}", status_code=204, responses={
    **NOT_FOUND, 409: {"model": ErrorBody, "description": "still used (`where`), or a generated chime"}})
def delete_media(
    sha256: str, user: User = Depends(current_user), s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> Response:
    """Deleted, row and file, unless something still to come uses it: then 409 with `where`."""
    library.delete(s, user, sha256)
    s.commit()
    rt.media.path_for(sha256).unlink(missing_ok=True)
    return Response(status_code=204)


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
    metrics.MEDIA_SERVED.inc()
    return FileResponse(
        path,
        media_type=STORED_CONTENT_TYPE,
        headers={"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{sha256}"'},
    )
