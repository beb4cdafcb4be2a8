"""Panel page: the media library (list, search, listen, rename, tag, expiry, delete).

The same use-cases as GET/PATCH/DELETE /api/v1/media (controller/usecases/media.py): the
caller's area decides what is listed and what may change; a recording still used by
something to come cannot be deleted, and the page says by what.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from controller.core.errors import UserError
from controller.core.permissions import Action
from controller.services import media_library
from controller.usecases import media as library
from controller.web.pagekit import authorized_form, page_ctx, user_error
from controller.web.panel import Ctx, redirect, render, runtime

router = APIRouter(include_in_schema=False)
BAD_DATE = "Ngày hết hạn phải có dạng ngày/tháng/năm, ví dụ 31/12/2026."


def _page(request: Request, ctx: Ctx, q: str = "", *, status: int = 200, error: Any = None) -> Response:
    with runtime(request).db.session() as s:
        rows = library.listing(s, ctx.user, q or None, limit=300)
        uses = media_library.usage_map(s)
    items = [{"m": m, "title": media_library.display_name(m), "uses": uses.get(m.sha256, [])} for m in rows]
    return render(request, "library.html", status=status, ctx=ctx, items=items, q=q, error=error,
                  now=datetime.now().astimezone())  # fmt: skip


@router.get("/library", response_class=HTMLResponse)
def library_page(request: Request, q: str = "") -> Response:
    ctx = page_ctx(request, Action.VIEW)
    return _page(request, ctx, q[:200])


def _expiry(text: str, tz: str) -> datetime | None:
    """dd/mm/yyyy: the recording may be used through that whole local day."""
    day = datetime.strptime(text.strip(), "%d/%m/%Y").date()
    return datetime.combine(day, time(23, 59, 59), tzinfo=ZoneInfo(tz))


@router.post("/library/{sha256}/edit", response_class=HTMLResponse)
async def edit(request: Request, sha256: str) -> Response:
    rt, form, ctx = await authorized_form(request, Action.MEDIA_UPLOAD)
    expiry_text = str(form.get("expires", "")).strip()
    try:
        expires = _expiry(expiry_text, rt.settings.timezone) if expiry_text else None
    except ValueError:
        return _page(request, ctx, status=422, error=(BAD_DATE, {}))
    change = library.MediaChange(
        title=str(form.get("title", ""))[:200],
        tags=[t for t in str(form.get("tags", "")).split(",") if t.strip()][:20],
        expires_at=expires, clear_expiry=not expiry_text)  # fmt: skip
    try:
        with rt.db.session() as s:
            library.change(s, ctx.user, sha256, change)
    except UserError as exc:
        return _page(request, ctx, status=exc.status, error=user_error(exc, ctx.lang))
    return redirect("/library?ok=media_saved")


@router.post("/library/{sha256}/delete", response_class=HTMLResponse)
async def delete(request: Request, sha256: str) -> Response:
    rt, _form, ctx = await authorized_form(request, Action.MEDIA_UPLOAD)
    try:
        with rt.db.session() as s:
            library.delete(s, ctx.user, sha256)
    except UserError as exc:
        return _page(request, ctx, status=exc.status, error=user_error(exc, ctx.lang))
    rt.media.path_for(sha256).unlink(missing_ok=True)
    return redirect("/library?ok=media_deleted")
