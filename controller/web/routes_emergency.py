"""The emergency page: deliberately separate and red, with a confirmation step and live progress.

Form (areas, text, optional recording, repeat) -> confirmation that says back the areas,
the number of stations, the text and the repeat rule in plain Vietnamese -> `emergency.start`
(the same call as POST /api/v1/broadcasts with priority "emergency") -> a progress page
polling the service's per-station states: n of N on air, who is not and why; cancel calls
`emergency.stop`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, require_targets_in_scope
from controller.db.models import Area, Broadcast, Device, Media
from controller.db.statuses import DeviceKind, PlayStatus
from controller.schemas.broadcasts import BroadcastCreate
from controller.services import broadcast_status, emergency, rrule_text
from controller.services.targets import Targets
from controller.services.tts import VOICES
from controller.usecases import broadcasts as sending
from controller.usecases import presets
from controller.web import target_picker
from controller.web.lateness import describe
from controller.web.pagekit import authorized_form, communes, page_ctx, targets_from_form, to_int, user_error
from controller.web.panel import Ctx, Forbidden, redirect, render, runtime

router = APIRouter(include_in_schema=False)
ON_AIR = (PlayStatus.PLAYING, PlayStatus.PLAYED)
STATE_NAMES = {
    "pending": "Đang chờ",
    "acked": "Đã nhận lệnh, chưa phát",
    "playing": "Đang phát",
    "played": "Đã phát",
    "interrupted": "Bị ngắt",
    "failed": "Lỗi phát",
    "missed": "Bị lỡ",
    "rejected": "Từ chối lệnh",
    "offline": "Mất kết nối",
}
VOICE_NAMES = {"vi-north": "Giọng miền Bắc", "vi-central": "Giọng miền Trung", "vi-south": "Giọng miền Nam"}


def _repeat_rule(values: dict[str, Any]) -> str | None:
    if values.get("repeat") != "hours":
        return None
    hours = max(1, min(24, to_int(values.get("every_hours")) or 1))
    return f"FREQ=HOURLY;INTERVAL={hours}"


def _read(form: Any) -> dict[str, Any]:
    keys = ("title", "text", "media", "voice", "target", "repeat", "every_hours", "led_text")
    values: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in keys}
    values["communes"] = [to_int(v) for v in form.getlist("communes")]
    values["pick"] = [str(v) for v in form.getlist("pick")][:200]  # targets by name (target_picker.py)
    values["title"] = values["title"] or "Thông báo khẩn cấp"
    return values


def _form_page(
    request: Request, ctx: Ctx, *, status: int = 200, values: dict[str, Any] | None = None, error: Any = None,
    posted: Any = None,
) -> Response:
    with runtime(request).db.session() as s:
        choices = communes(s, ctx.scope)
        picker = target_picker.picker(s, ctx, posted if posted is not None else values)
        media = [
            (m.sha256, m.original_name, m.duration_s)
            for m in s.scalars(select(Media).order_by(Media.created_at.desc()).limit(30))
        ]
        recent = sending.visible_emergencies(s, ctx.user, 10)  # the API's rule, as `_visible`
        offered = presets.presets(s, ctx.user)  # the user's province's (issue 20 item 8)
    return render(
        request,
        "emergency.html",
        status=status,
        ctx=ctx,
        communes=choices,
        media=media,
        recent=recent,
        values=values
        or {"target": "all", "communes": [], "repeat": "none", "every_hours": "2", "voice": "vi-north"},
        voices=[(v, VOICE_NAMES.get(v, v)) for v in VOICES],
        error=error,
        picker=picker, picker_action="/emergency/pick", picker_kinds=target_picker.KIND_LABELS,
        presets=offered,
    )


def _no_targets_page(request: Request, ctx: Ctx, values: dict[str, Any]) -> Response:
    """The form again when the targets could not be read (neither "all" nor any commune)."""
    return _form_page(
        request, ctx, status=422, values=values, error=("Hãy chọn nơi phát: tất cả hoặc một số xã.", {})
    )


def _visible(s: Session, ctx: Ctx, broadcast_id: int) -> Broadcast | None:
    """The broadcast by the API's rule (GET /broadcasts/{id}): it reaches a station in the
    user's area or they sent it; None otherwise."""
    try:
        return sending.get(s, ctx.user, broadcast_id)
    except NotFound:
        return None


@router.post("/emergency/pick", response_class=HTMLResponse)
async def pick_targets(request: Request) -> Response:
    """The form posted back to search for targets by name (no JavaScript); nothing is sent."""
    _rt, form, ctx = await authorized_form(request, Action.BROADCAST_EMERGENCY)
    values = _read(form) | {"target": "picked"}
    return _form_page(request, ctx, values=values, posted=form)


@router.get("/emergency", response_class=HTMLResponse)
def emergency_form(request: Request, preset: str | None = None) -> Response:
    """`?preset=flood`: the form filled from the user's province's preset (one tap, no script)."""
    ctx = page_ctx(request, Action.BROADCAST_EMERGENCY)
    if preset:
        with ctx.rt.db.session() as s:
            chosen = next((p for p in presets.presets(s, ctx.user) if p.key == preset), None)
        if chosen is not None:
            return _form_page(request, ctx, values=_preset_values(chosen))
    return _form_page(request, ctx)


def _preset_values(p: presets.Preset) -> dict[str, Any]:
    return {"title": p.title, "text": p.text, "led_text": p.led_text, "voice": p.voice, "target": "all",
            "communes": [], "repeat": "hours" if p.repeat_hours else "none",
            "every_hours": str(p.repeat_hours or 2), "preset": p.key}


def _request(s: Any, ctx: Ctx, form: Any, values: dict[str, Any]) -> BroadcastCreate:
    targets = targets_from_form(s, ctx, form)
    require_targets_in_scope(s, ctx.user, targets, DeviceKind.SPEAKER)
    return BroadcastCreate(
        title=values["title"][:300],
        media_sha256=values["media"] or None,
        targets=targets,
        priority="emergency",
        text=values["text"] or None,
        voice=values["voice"] or "vi-north",
        repeat=_repeat_rule(values),
        led_text=values.get("led_text", "")[:200] or None,
    )


def _area_names(s: Any, targets: Targets, ctx: Ctx) -> list[str]:
    if targets.all:
        return ["Tất cả các trạm"]
    ids = [*targets.communes, *targets.groups]
    names = [n for (n,) in s.execute(select(Area.name).where(Area.id.in_(ids)).order_by(Area.name))]
    if targets.devices:  # stations picked by name
        names += [n for (n,) in s.execute(select(Device.name).where(Device.id.in_(targets.devices)))]
    return names


@router.post("/emergency/confirm", response_class=HTMLResponse)
async def confirm(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.BROADCAST_EMERGENCY)
    values = _read(form)
    if not values["text"] and not values["media"]:
        return _form_page(
            request,
            ctx,
            status=422,
            values=values,
            error=("Hãy nhập nội dung thông báo hoặc chọn một bản ghi âm.", {}),
        )
    with rt.db.session() as s:
        try:
            req = _request(s, ctx, form, values)
            fan = emergency.plan(s, req.targets)
        except (ValidationError, ValueError):
            return _no_targets_page(request, ctx, values)
        except UserError as exc:
            return _form_page(request, ctx, status=exc.status, values=values, error=user_error(exc, ctx.lang))
        areas = _area_names(s, req.targets, ctx)
        media = s.get(Media, values["media"]) if values["media"] else None
        media_name = media.original_name if media else ""
    repeat = rrule_text.describe(req.repeat, lang=ctx.lang) if req.repeat else ""
    return render(
        request,
        "emergency_confirm.html",
        ctx=ctx,
        values=values,
        areas=areas,
        stations=fan.count,
        repeat=repeat,
        media_name=media_name,
        voice_name=VOICE_NAMES.get(values["voice"], values["voice"]),
    )


@router.post("/emergency/start", response_class=HTMLResponse)
async def start(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.BROADCAST_EMERGENCY)
    values = _read(form)
    if str(form.get("confirmed", "")) != "yes":
        return _form_page(
            request, ctx, status=422, values=values, error=("Hãy xác nhận trước khi phát khẩn cấp.", {})
        )
    with rt.db.session() as s:
        try:
            req = _request(s, ctx, form, values)
            bc_id = (await sending.send_emergency(rt.emergency_deps, s, ctx.user, req)).broadcast.id
        except (ValidationError, ValueError):
            return _no_targets_page(request, ctx, values)
        except UserError as exc:
            if exc.status == 403 and exc.key == "auth.forbidden":
                raise Forbidden() from exc
            return _form_page(request, ctx, status=exc.status, values=values, error=user_error(exc, ctx.lang))
    return redirect(f"/emergency/{bc_id}")


def _progress(request: Request, ctx: Ctx, broadcast_id: int) -> dict[str, Any] | None:
    with runtime(request).db.session() as s:
        bc = _visible(s, ctx, broadcast_id)
        if bc is None:
            return None
        info = broadcast_status.summary(s, bc, ctx.scope)  # only the caller's stations
        if info is None:
            return None
        states = info["station_states"]
        em = info["emergency"]
        return {
            "id": bc.id,
            "title": bc.title,
            "start_at": bc.start_at,
            "status": em["status"],
            "text": em["text"],
            "repeat": rrule_text.describe(em["repeat"], lang=ctx.lang) if em["repeat"] else "",
            "total": len(states),
            "on_air": sum(1 for x in states if x["state"] in ON_AIR),
            "not_on_air": [x for x in states if x["state"] not in ON_AIR],
            "sent_by": em["sent_by"],
            "late": [{"device_id": x["device_id"], "name": x["name"] or x["uid"],
                      "text": describe(x["lateness"], ctx.rt.settings.timezone, ctx.lang)}
                     for x in states if x["lateness"]],
        }


@router.get("/emergency/{broadcast_id}", response_class=HTMLResponse)
def progress_page(request: Request, broadcast_id: int) -> Response:
    ctx = page_ctx(request)
    info = _progress(request, ctx, broadcast_id)
    if info is None:
        return render(
            request,
            "error.html",
            status=404,
            ctx=ctx,
            message=("Không tìm thấy lệnh phát khẩn cấp {id}.", {"id": broadcast_id}),
        )
    return render(request, "emergency_progress.html", ctx=ctx, p=info, state_names=STATE_NAMES,
                  late=info["late"])


@router.get("/emergency/{broadcast_id}/status.json")
def progress_json(request: Request, broadcast_id: int) -> Response:
    """What the progress page polls every 2 s (labels already in the page's language)."""
    from controller.web.i18n import gettext_for

    ctx = page_ctx(request)
    info = _progress(request, ctx, broadcast_id)
    if info is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    _ = gettext_for(ctx.lang)
    rows = [
        {
            "name": x["name"],
            "uid": x["uid"],
            "state": _(STATE_NAMES.get(x["state"], x["state"])),
            "reason": x["reason"] or "",
        }
        for x in info["not_on_air"][:200]
    ]
    return JSONResponse(
        {"on_air": info["on_air"], "total": info["total"], "status": info["status"], "not_on_air": rows},
        headers={"Cache-Control": "no-store"},
    )


@router.post("/emergency/{broadcast_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, broadcast_id: int) -> Response:
    rt, _form, ctx = await authorized_form(request, Action.BROADCAST_EMERGENCY)
    with rt.db.session() as s:
        if _visible(s, ctx, broadcast_id) is None:
            raise Forbidden()
        try:
            await sending.cancel_emergency(rt.emergency_deps, s, ctx.user, broadcast_id)
        except UserError as exc:
            if exc.status != 503:  # stored as cancelled; the broker hears it when back
                return render(
                    request, "error.html", status=exc.status, ctx=ctx, message=user_error(exc, ctx.lang)
                )
    return redirect(f"/emergency/{broadcast_id}?ok=emergency_cancelled")
