"""Panel page: the emergency presets of my province (issue 20 item 8), edited by admins and the
province's operators; everyone else of the province reads them. The rules are in
`usecases/presets.py` (404 for another province, 403 for a write without the right)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from controller.core.errors import UserError
from controller.core.permissions import Action
from controller.db.models import Area
from controller.db.statuses import AreaLevel
from controller.services.tts import VOICES
from controller.usecases import presets
from controller.web.pagekit import authorized_form, page_ctx, to_int, user_error
from controller.web.panel import Ctx, Forbidden, redirect, render
from controller.web.routes_emergency import VOICE_NAMES

router = APIRouter(include_in_schema=False)


def _page(request: Request, ctx: Ctx, province_id: int | None, *, status: int = 200, error: Any = None,
          edited: presets.Preset | None = None) -> Response:  # fmt: skip
    with ctx.rt.db.session() as s:
        try:
            province, entries = presets.entries(s, ctx.user, province_id)
            rows = [e.preset for e in entries]
            own = "province" if province is not None else "installation"
            own_keys = {e.preset.key for e in entries if e.source == own}
        except UserError as exc:
            return render(
                request, "error.html", status=exc.status, ctx=ctx, message=user_error(exc, ctx.lang)
            )
        editable = presets.may_edit(s, ctx.user, province)
        name = s.scalar(select(Area.name).where(Area.id == province)) if province is not None else None
        all_provinces = select(Area.id, Area.name).where(Area.level == AreaLevel.PROVINCE).order_by(Area.name)
        provinces = list(s.execute(all_provinces).all()) if presets.unscoped(ctx.user) else []
    if edited is not None:
        rows = [edited if p.key == edited.key else p for p in rows]
    return render(request, "emergency_presets.html", status=status, ctx=ctx, presets=rows, editable=editable,
                  province_id=province, province_name=name, provinces=provinces, error=error,
                  own_keys=own_keys, voices=[(v, VOICE_NAMES.get(v, v)) for v in VOICES])  # fmt: skip


@router.get("/emergency-presets", response_class=HTMLResponse)
def presets_page(request: Request, province_id: int | None = None) -> Response:
    return _page(request, page_ctx(request, Action.VIEW), province_id)


@router.post("/emergency-presets/{key}", response_class=HTMLResponse)
async def preset_save(request: Request, key: str) -> Response:
    rt, form, ctx = await authorized_form(request, Action.POLICY_EDIT)
    province_id = to_int(form.get("province_id"))
    repeat = to_int(form.get("repeat_hours")) if str(form.get("repeat", "")) == "hours" else None
    if str(form.get("repeat", "")) == "hours" and repeat is None:
        repeat = 0  # refused by the check below with a clear message
    values = presets.Preset(key=key[:32], label=str(form.get("label", ""))[:200],
                            title=str(form.get("title", ""))[:400], text=str(form.get("text", ""))[:2000],
                            led_text=str(form.get("led_text", ""))[:400],
                            voice=str(form.get("voice", "vi-north")), repeat_hours=repeat)  # fmt: skip
    try:
        with rt.db.session() as s:
            presets.save(s, ctx.user, province_id, values)
    except UserError as exc:
        if exc.status == 403:
            raise Forbidden() from exc
        return _page(
            request, ctx, province_id, status=exc.status, error=user_error(exc, ctx.lang), edited=values
        )
    where = f"&province_id={province_id}" if province_id is not None else ""
    return redirect(f"/emergency-presets?ok=preset_saved{where}#preset-{key}")


@router.post("/emergency-presets/{key}/reset", response_class=HTMLResponse)
async def preset_reset(request: Request, key: str) -> Response:
    """"Về mẫu mặc định": drop the province's own version (as `DELETE /api/v1/emergency-presets/{id}`)."""
    rt, form, ctx = await authorized_form(request, Action.POLICY_EDIT)
    province_id = to_int(form.get("province_id"))
    try:
        with rt.db.session() as s:
            presets.reset_key(s, ctx.user, province_id, key[:32])
    except UserError as exc:
        if exc.status == 403:
            raise Forbidden() from exc
        return _page(request, ctx, province_id, status=exc.status, error=user_error(exc, ctx.lang))
    where = f"&province_id={province_id}" if province_id is not None else ""
    return redirect(f"/emergency-presets?ok=preset_reset{where}#preset-{key[:32]}")
