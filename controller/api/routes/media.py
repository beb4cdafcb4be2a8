from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.api.deps import OPERATOR_ROLES, current_user, db_session, require_role, runtime
from controller.core.errors import NotFound, UserError
from controller.core.i18n import human_size
from controller.db.models import Media, User
from controller.runtime import Runtime
from controller.services import audit
from controller.services.media import STORED_CODEC, STORED_CONTENT_TYPE

router = APIRouter(tags=["media"])
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def media_json(m: Media) -> dict[str, Any]:
    return {
        "sha256": m.sha256,
        "duration_s": m.duration_s,
        "size": m.size,
        "content_type": m.content_type,
        "codec": m.codec,
        "original_name": m.original_name,
        "url": f"/media/{m.sha256}",
        "created_at": m.created_at.isoformat(),
    }


@router.post("/api/v1/media", status_code=201)
async def upload_media(
    request: Request,
    file: UploadFile = File(...),
    user: User = Depends(require_role(*OPERATOR_ROLES)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > rt.settings.media_max_bytes + 65536:
        raise UserError(413, "media.too_large", limit=human_size(rt.settings.media_max_bytes))
    name = file.filename or "upload"
    stored = await run_in_threadpool(rt.media.ingest, file.file, name)
    row = s.get(Media, stored.sha256)
    if row is None:
        row = Media(
            sha256=stored.sha256, original_name=name[:255], content_type=STORED_CONTENT_TYPE,
            size=stored.size, duration_s=stored.duration_s, codec=STORED_CODEC,
            source_sha256=stored.source_sha256, created_by=user.id,
        )  # fmt: skip
        s.add(row)
        audit.record(s, user.id, "media.upload", "media", stored.sha256, name=name)
        s.commit()
    return media_json(row)


@router.get("/api/v1/media")
def list_media(
    limit: int = 200, _: User = Depends(current_user), s: Session = Depends(db_session)
) -> list[dict[str, Any]]:
    q = select(Media).order_by(Media.created_at.desc()).limit(min(limit, 5000))
    return [media_json(m) for m in s.scalars(q)]


@router.get("/api/v1/media/{sha256}")
def media_info(
    sha256: str, _: User = Depends(current_user), s: Session = Depends(db_session)
) -> dict[str, Any]:
    row = s.get(Media, sha256)
    if row is None:
        raise NotFound("media.not_found", sha256=sha256)
    return media_json(row)


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
