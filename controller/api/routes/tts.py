"""POST /api/v1/media/tts: typed Vietnamese text -> a normalized bulletin media object."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from controller.api.deps import OPERATOR_ROLES, db_session, lang, require_role, runtime
from controller.db.models import Media, User
from controller.runtime import Runtime
from controller.schemas.media import TtsMediaOut, TtsRequest
from controller.services import audit
from controller.services.media import StoredMedia, record_media
from controller.services.tts import Speech, TtsService

router = APIRouter(tags=["media"])


def tts_service(rt: Runtime) -> TtsService:
    """One service per running controller, built from its settings on first use."""
    return rt.tts


def _make(rt: Runtime, service: TtsService, req: TtsRequest, name: str) -> tuple[StoredMedia, Speech]:
    with tempfile.TemporaryDirectory(dir=rt.media.root / "tmp") as work:
        speech = service.synthesize(req.text, req.voice, req.rate, Path(work))
        return rt.media.ingest_path(speech.wav, name), speech


@router.post("/api/v1/media/tts", status_code=201, response_model=TtsMediaOut,
             response_model_exclude_unset=True)
async def text_to_speech(
    req: TtsRequest,
    user: User = Depends(require_role(*OPERATOR_ROLES)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
    language: str = Depends(lang),
) -> dict[str, Any]:
    service = tts_service(rt)
    service.validate(req.text, req.voice, req.rate)  # fail fast, before any process starts
    first_line = " ".join(req.text.split())[:80]
    name = req.title or f"TTS {req.voice}: {first_line}"
    stored, speech = await run_in_threadpool(_make, rt, service, req, name)
    existed = s.get(Media, stored.sha256) is not None
    row = record_media(s, stored, name, user.id, origin="tts")
    if not existed:
        audit.record(s, user.id, "media.tts", "media", stored.sha256, voice=req.voice, rate=req.rate,
                     engine=speech.engine, chars=len(req.text))  # fmt: skip
        s.commit()
    return {
        **TtsMediaOut.body(row, language),
        "tts": {"voice": speech.voice, "rate": speech.rate, "engine": speech.engine,
                "spoken_text": speech.spoken_text},
    }  # fmt: skip
