"""LED boards in the panel: compose with a live preview image, check what each board will
really show (text-only boards lose the diacritics: `led.board_will_show`), schedule a window
or a recurrence, and see every board's current picture.

The preview is drawn by the boards' own bitmap path (`device_agents.led.bitmap`), the
check is `led.create(dry_run=True)`, the send is `led.create` (as POST /api/v1/led-messages).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from controller.core.errors import UserError
from controller.core.permissions import Action
from controller.db.models import Area, Device
from controller.db.models_led import LedMessageRow
from controller.db.statuses import DeviceKind
from controller.services import led, rrule_text
from controller.usecases import led as boards
from controller.web.pagekit import (
    authorized_form,
    communes,
    page_ctx,
    parse_local,
    targets_from_form,
    to_int,
    tz,
    user_error,
)
from controller.web.panel import Ctx, Forbidden, redirect, render, runtime, with_headers

router = APIRouter(include_in_schema=False)
COLORS = (("amber", "Vàng cam"), ("red", "Đỏ"), ("green", "Xanh lá"), ("yellow", "Vàng"), ("white", "Trắng"))
MODES = (("hold", "Đứng yên"), ("scroll", "Chạy chữ"), ("flash", "Nhấp nháy"))
PREVIEW_W, PREVIEW_H = 192, 32


def _boards(s: Any, scope: set[int] | None) -> list[tuple[Device, str]]:
    q = (
        select(Device, Area.name)
        .join(Area, Area.id == Device.commune_id)
        .where(Device.kind == DeviceKind.LED, Device.retired_at.is_(None))
        .order_by(Area.name, Device.name)
        .limit(200)
    )
    if scope is not None:
        q = q.where(Device.commune_id.in_(scope or {-1}))
    rows = [(d, n) for d, n in s.execute(q)]
    for d, _n in rows:
        s.expunge(d)
    return rows


def _messages(s: Any, ctx: Ctx) -> list[LedMessageRow]:
    """The active texts by the API's rule (GET /led-messages): they reach a board in the area."""
    rows = boards.visible(s, ctx.user, 50, active_only=True)
    for m in rows:
        s.expunge(m)
    return rows


def _page(
    request: Request,
    ctx: Ctx,
    *,
    status: int = 200,
    form: dict[str, Any] | None = None,
    error: Any = None,
    check: dict[str, Any] | None = None,
) -> Response:
    with runtime(request).db.session() as s:
        board_rows = _boards(s, ctx.scope)
        messages = _messages(s, ctx)
        choices = communes(s, ctx.scope)
    return render(
        request,
        "led.html",
        status=status,
        ctx=ctx,
        boards=board_rows,
        messages=messages,
        communes=choices,
        form=form
        or {
            "color": "amber",
            "mode": "hold",
            "target": "all",
            "communes": [],
            "days": list(range(7)),
            "show_minutes": "60",
            "when": "now",
        },
        error=error,
        check=check,
        colors=COLORS,
        modes=MODES,
        week_days=rrule_text.DAY_VI,
    )


@router.get("/led", response_class=HTMLResponse)
def led_page(request: Request) -> Response:
    return _page(request, page_ctx(request))


@router.get("/led/preview.png")
async def compose_preview(request: Request, text: str = "", color: str = "amber") -> Response:
    """The composed text as a board of pixels would draw it (the live preview while typing)."""
    page_ctx(request)
    from device_agents.led.bitmap import render_png

    text = " ".join(text.split())[:200]
    color = color if color in dict(COLORS) else "amber"
    png = await run_in_threadpool(render_png, text, width=PREVIEW_W, height=PREVIEW_H, color=color)
    return with_headers(Response(png, media_type="image/png", headers={"Cache-Control": "no-store"}))


@router.get("/led/boards/{device_id}/preview.png")
def board_preview(request: Request, device_id: int) -> Response:
    ctx = page_ctx(request)
    with runtime(request).db.session() as s:
        try:
            device = led.board(s, device_id)
        except UserError:
            return with_headers(Response(status_code=404))
        if ctx.scope is not None and device.commune_id not in ctx.scope:
            return with_headers(Response(status_code=404))
        png = led.preview_png(device)
    return with_headers(Response(png, media_type="image/png", headers={"Cache-Control": "no-store"}))


def _read(form: Any) -> dict[str, Any]:
    keys = (
        "text",
        "color",
        "mode",
        "target",
        "when",
        "start_local",
        "end_local",
        "times",
        "show_minutes",
        "priority",
    )
    values: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in keys}
    values["communes"] = [to_int(v) for v in form.getlist("communes")]
    values["days"] = [int(v) for v in form.getlist("days") if str(v).isdigit()]
    return values


@router.post("/led/send", response_class=HTMLResponse)
async def send(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.LED_COMPOSE)
    values = _read(form)
    zone = tz(request)
    dry = str(form.get("action", "check")) != "send"
    with rt.db.session() as s:
        try:
            targets = targets_from_form(s, ctx, form)
            body: dict[str, Any] = {
                "text": values["text"],
                "targets": targets,
                "mode": values["mode"] or "hold",
                "color": values["color"] or "amber",
                "dry_run": dry,
                "priority": "priority" if values["priority"] == "priority" else "normal",
            }
            repeat_text = ""
            if values["when"] == "window":
                body["start_at"] = parse_local(values["start_local"], zone)
                body["end_at"] = parse_local(values["end_local"], zone)
            elif values["when"] == "repeat":
                rule = rrule_text.build(
                    mode="days", days=values["days"], times=rrule_text.parse_times(values["times"])
                )
                body.update(
                    rrule=rule,
                    dtstart=datetime.now(zone).date().isoformat() + "T00:00:00",
                    show_minutes=int(values["show_minutes"] or 60),
                )
                repeat_text = rrule_text.describe(rule, lang=ctx.lang)
            req = led.LedMessageCreate.model_validate(body)
        except (ValidationError, ValueError):
            return _page(
                request,
                ctx,
                status=422,
                form=values,
                error=("Hãy nhập nội dung, chọn nơi hiển thị và thời gian hợp lệ.", {}),
            )
        try:
            row, _device_ids, info = boards.compose(s, ctx.user, req, lang=ctx.lang)  # as the API
        except UserError as exc:
            if exc.status == 403 and exc.key == "auth.forbidden":
                raise Forbidden() from exc
            return _page(request, ctx, status=exc.status, form=values, error=user_error(exc, ctx.lang))
        if dry or row is None:
            return _page(request, ctx, form=values, check={**info, "repeat": repeat_text})
        s.commit()  # the boards' dispatch is queued in this same transaction
    return redirect("/led?ok=led_sent")


@router.post("/led/{message_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, message_id: int) -> Response:
    rt, _form, ctx = await authorized_form(request, Action.LED_COMPOSE)
    with rt.db.session() as s:
        row = s.get(LedMessageRow, message_id)
        if row is None:
            return redirect("/led")
        try:
            boards.cancel(s, ctx.user, message_id)  # as the API: only a text they could have sent
        except UserError as exc:
            raise Forbidden() from exc
        s.commit()
    return redirect("/led?ok=led_cancelled")
