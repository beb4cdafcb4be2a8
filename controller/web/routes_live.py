"""Panel page "Phát trực tiếp" (docs/live.md): speak into the browser's microphone, stations play it.

The page's script (static/live.js) starts a session here, then sends the microphone as
PCM over the live WebSocket (/api/v1/live/{id}/ws, authenticated by this panel session and
its CSRF token) and shows the level and how many stations are receiving.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from controller.core.errors import UserError
from controller.core.i18n import t
from controller.core.permissions import Action
from controller.services import live
from controller.usecases import streams
from controller.web import queries
from controller.web.panel import Ctx, Forbidden, check_csrf, current, render, runtime, with_headers
from controller.web.routes_bulletins import form_targets
from protocol.messages import Priority

router = APIRouter(include_in_schema=False)


def _ctx(request: Request) -> Ctx:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
    ctx.require(Action.BROADCAST_SEND)
    return ctx


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return with_headers(JSONResponse(body, status_code=status))


@router.get("/live", response_class=HTMLResponse)
def live_page(request: Request) -> Response:
    ctx = _ctx(request)
    with ctx.rt.db.session() as s:
        communes = queries.communes(s, ctx.scope)
    return render(request, "live.html", ctx=ctx, communes=communes,
                  can_emergency=ctx.can(Action.BROADCAST_EMERGENCY))  # fmt: skip


@router.post("/live/start")
async def live_start(request: Request) -> Response:
    """Start a session from the page's form; answers JSON for live.js."""
    ctx = _ctx(request)
    form = await request.form()
    await check_csrf(ctx, form)
    priority = str(form.get("priority") or "emergency")
    if priority not in ("normal", "priority", "emergency"):
        raise Forbidden()
    rt = ctx.rt
    try:
        with rt.db.session() as s:
            reason = str(form.get("override_reason") or "")[:1000] or None
            req = live.LiveCreate(title=str(form.get("title") or "Phát trực tiếp")[:300],
                                  targets=form_targets(s, ctx, form), priority=Priority(priority),
                                  override_reason=reason)  # fmt: skip
            user = s.merge(ctx.user)
            ls, device_ids = streams.start_live(s, user, req, max_minutes=rt.settings.live_max_minutes)
            s.commit()
            body = live.live_json(ls, live.hub_of(request.app.state).open(ls)) | {"stations": len(device_ids)}
    except UserError as exc:
        return _json({"error": t(exc.key, ctx.lang, **exc.params)}, exc.status)
    except (ValidationError, ValueError):
        return _json({"error": t("broadcast.no_targets", ctx.lang)}, 422)
    return _json(body, 201)


@router.post("/live/{stream_id}/end")
async def live_end(request: Request, stream_id: int) -> Response:
    ctx = _ctx(request)
    form = await request.form()
    await check_csrf(ctx, form)
    try:
        with ctx.rt.db.session() as s:
            ls = streams.end_live(s, s.merge(ctx.user), stream_id)  # checks the area too
            s.commit()
            hub = live.hub_of(request.app.state)
            hub.end(ls.id)
            body = live.live_json(ls, hub.get(ls.id))
    except UserError as exc:
        return _json({"error": t(exc.key, ctx.lang, **exc.params)}, exc.status)
    return _json(body)
