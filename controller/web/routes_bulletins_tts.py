"""Type a bulletin, hear the synthesized voice, keep it as a bulletin (issue 7, item 5).

The synthesis is the API's own path (`controller.api.routes.tts`: the TTS service, the
media pipeline, `record_media(origin="tts")`), so a typed bulletin is the same media object
an upload makes: it can then be sent (/bulletins) or scheduled (/schedules/new).

The province's ready texts (usecases/presets.py, the emergency form's presets) fill the form too
(`/bulletins/tts?preset=all_clear`, no script): an all-clear or an epidemic advice is often a
normal bulletin, not an emergency, and is sent or scheduled like any other (issue 20 walk-through).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from controller.api.routes.tts import _make, tts_service
from controller.core.errors import UserError
from controller.core.permissions import Action
from controller.db.models import Media
from controller.schemas.media import TtsRequest
from controller.services import audit
from controller.services.media import record_media
from controller.services.tts import VOICES, TtsError
from controller.usecases import presets
from controller.web.pagekit import authorized_form, page_ctx, user_error
from controller.web.panel import Ctx, render

router = APIRouter(include_in_schema=False)
VOICE_NAMES = {"vi-north": "Giọng miền Bắc", "vi-central": "Giọng miền Trung", "vi-south": "Giọng miền Nam"}
RATES = (("0.85", "Chậm"), ("1.0", "Bình thường"), ("1.15", "Nhanh"))


def _page(
    request: Request,
    ctx: Ctx,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    made: Any = None,
    spoken: str = "",
    error: Any = None,
) -> Response:
    with ctx.rt.db.session() as s:
        offered = presets.presets(s, ctx.user)  # the user's province's, as the emergency form's
    return render(
        request,
        "bulletin_tts.html",
        status=status,
        ctx=ctx,
        form=form or {},
        made=made,
        spoken=spoken,
        error=error,
        voices=[(v, VOICE_NAMES.get(v, v)) for v in VOICES],
        rates=RATES,
        presets=offered,
    )


@router.get("/bulletins/tts", response_class=HTMLResponse)
def tts_page(request: Request, preset: str | None = None) -> Response:
    """`?preset=all_clear`: the form filled with that preset's title, text and voice."""
    ctx = page_ctx(request, Action.MEDIA_UPLOAD)
    form: dict[str, str] = {}
    if preset:
        with ctx.rt.db.session() as s:
            chosen = next((p for p in presets.presets(s, ctx.user) if p.key == preset), None)
        if chosen is not None:
            form = {"title": chosen.title, "text": chosen.text, "voice": chosen.voice, "preset": chosen.key}
    return _page(request, ctx, form=form)


@router.post("/bulletins/tts", response_class=HTMLResponse)
async def tts_preview(request: Request) -> Response:
    """Synthesize now and show the player; the media is kept (it is the bulletin)."""
    rt, form, ctx = await authorized_form(request, Action.MEDIA_UPLOAD)
    values = {k: str(form.get(k, "")) for k in ("text", "voice", "rate", "title", "preset")}
    text, title = values["text"].strip(), " ".join(values["title"].split())[:200]
    if not text:
        return _page(request, ctx, status=422, form=values, error=("Hãy nhập nội dung bản tin.", {}))
    if not title:
        title = " ".join(text.split())[:80]
    try:
        req = TtsRequest(
            text=text, voice=values["voice"] or "vi-north", rate=float(values["rate"] or 1.0), title=title
        )
    except ValueError:
        return _page(request, ctx, status=422, form=values, error=("Giọng đọc hoặc tốc độ không hợp lệ.", {}))
    service = tts_service(rt)
    try:
        service.validate(req.text, req.voice, req.rate)
        stored, speech = await run_in_threadpool(_make, rt, service, req, title)
    except UserError as exc:
        return _page(request, ctx, status=exc.status, form=values, error=user_error(exc, ctx.lang))
    except TtsError:
        return _page(
            request,
            ctx,
            status=502,
            form=values,
            error=("Không tổng hợp được giọng đọc. Hãy thử lại hoặc báo kỹ thuật viên.", {}),
        )
    with rt.db.session() as s:
        existed = s.get(Media, stored.sha256) is not None
        record_media(s, stored, title, ctx.user.id, origin="tts")
        if not existed:
            audit.record(
                s,
                ctx.user.id,
                "media.tts",
                "media",
                stored.sha256,
                voice=req.voice,
                rate=req.rate,
                engine=speech.engine,
                chars=len(req.text),
            )
        s.commit()
        made = s.scalars(select(Media).where(Media.sha256 == stored.sha256)).one()
        s.expunge(made)
    return _page(request, ctx, form=values, made=made, spoken=speech.spoken_text)
