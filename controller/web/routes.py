"""Panel pages. Each handler: who is it (session), may they (permissions), then a service call."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select

from controller.core.errors import NotFound, UserError
from controller.core.i18n import t
from controller.core.permissions import ROLES, Action, all_in_scope, visible_device
from controller.db.models import Area, Broadcast, Device, Media, PlayLog, User
from controller.db.statuses import BroadcastStatus
from controller.services import audit, auth, broadcasts
from controller.services.auth import login_now
from controller.services.media import record_media
from controller.services.targets import Targets
from controller.usecases import broadcasts as sending
from controller.web import accounts, dashboard_alarms, queries
from controller.web.i18n import LANG_COOKIE, LANGS
from controller.web.pagekit import authorized_form, to_int
from controller.web.panel import (
    BadCsrf,
    Ctx,
    Forbidden,
    check_csrf,
    current,
    lang_of,
    redirect,
    render,
    runtime,
    safe_next,
    with_headers,
)
from controller.web.sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    change_password,
    csrf_ok,
    end_session,
    set_cookie,
    start_session,
)

router = APIRouter(include_in_schema=False)
SSE_INTERVAL_S = 2.0


# ---- login, logout, language, password -------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", login_csrf=token, next=safe_next(next), error=None, username="")
    set_cookie(resp, request, runtime(request).settings, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return resp


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, now: datetime = Depends(login_now)) -> Response:
    rt = runtime(request)
    address = request.client.host if request.client else "unknown"
    form = await request.form()
    username = str(form.get("username", ""))
    password = str(form.get("password", ""))
    next_path = safe_next(str(form.get("next", "/")))
    lang = lang_of(request)
    if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE), str(form.get("csrf", ""))):
        return render(request, "login.html", status=400,
                      login_csrf=request.cookies.get(LOGIN_CSRF_COOKIE, ""),
                      next=next_path, username=username,
                      error=("Phiên của biểu mẫu đã hết hạn. Hãy tải lại trang và đăng nhập lại.", {}))

    def attempt() -> tuple[str | None, tuple[str, dict[str, Any]] | None]:
        with rt.db.session() as s:
            outcome = auth.login(s, rt.settings, username, password, address, now=now)
            if outcome.user is None:
                s.commit()  # the failure counts
                if outcome.retry_after_s:
                    return None, (
                        "Đăng nhập sai quá nhiều lần. Vui lòng chờ {seconds} giây rồi thử lại.",
                        {"seconds": outcome.retry_after_s},
                    )
                return None, ("Sai tên đăng nhập hoặc mật khẩu.", {})
            token = start_session(s, rt.settings, outcome.user)
            audit.record(s, outcome.user.id, "user.login", "user", outcome.user.id)
            return token, None

    token, error = await run_in_threadpool(attempt)
    if token is None:
        return render(request, "login.html", status=401, lang=lang,
                      login_csrf=request.cookies.get(LOGIN_CSRF_COOKIE, ""), next=next_path,
                      username=username, error=error)
    resp = redirect(next_path)
    ttl = rt.settings.session_ttl_hours * 3600
    set_cookie(resp, request, rt.settings, SESSION_COOKIE, token, max_age=ttl)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    rt = runtime(request)
    form = await request.form()
    with rt.db.session() as s:
        ctx = current(request, s)
        await check_csrf(ctx, form)
        end_session(s, request.cookies.get(SESSION_COOKIE))
    resp = redirect("/login")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/lang")
def switch_language(request: Request, to: str = "vi", next: str = "/") -> Response:
    resp = redirect(safe_next(next))
    if to in LANGS:
        set_cookie(resp, request, runtime(request).settings, LANG_COOKIE, to, max_age=365 * 86400)
    return resp


@router.get("/account/password", response_class=HTMLResponse)
def password_page(request: Request) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
    return render(request, "password.html", ctx=ctx, error=None)


@router.post("/account/password", response_class=HTMLResponse)
async def password_change(request: Request) -> Response:
    rt = runtime(request)
    form = await request.form()
    with rt.db.session() as s:
        ctx = current(request, s)
        await check_csrf(ctx, form)
        new = str(form.get("new_password", ""))
        if new != str(form.get("confirm_password", "")):
            error: str | None = "Hai lần nhập mật khẩu mới không khớp."
        else:
            user = s.get(User, ctx.user.id)
            assert user is not None
            error = change_password(s, user, str(form.get("current_password", "")), new, ctx.web_session.id)
            if error is None:
                audit.record(s, user.id, "user.password", "user", user.id)
    if error:
        return render(request, "password.html", status=422, ctx=ctx, error=error)
    return redirect("/account/password?ok=password")


# ---- dashboard and live updates -----------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        board = queries.dashboard(s, ctx.scope)
        dots, box = queries.station_map(s, ctx.scope)
        alarms = dashboard_alarms.open_alarms(s, ctx.scope, ctx.lang, ctx.rt.settings.timezone)
    return render(request, "dashboard.html", ctx=ctx, board=board, dots=dots, box=box,
                  map_w=queries.MAP_W, map_h=queries.MAP_H, alarms=alarms)


@router.get("/panel/stream")
async def stream(request: Request) -> Response:
    """Server-sent events: the dashboard counts and open alarms (user's area), whenever they change."""
    rt = runtime(request)
    with rt.db.session() as s:
        ctx = current(request, s)
    scope, lang = ctx.scope, ctx.lang

    def snapshot() -> dict[str, Any]:
        with rt.db.session() as s:
            return {**queries.dashboard(s, scope).summary(),
                    "alarms": dashboard_alarms.open_alarms(s, scope, lang, rt.settings.timezone)}

    async def events() -> AsyncIterator[bytes]:
        last = None
        idle = 0.0
        yield b"retry: 3000\n\n"
        while not await request.is_disconnected():
            data = json.dumps(await asyncio.to_thread(snapshot), separators=(",", ":"))
            if data != last:
                last, idle = data, 0.0
                yield f"event: counts\ndata: {data}\n\n".encode()
            elif idle >= 15:
                idle = 0.0
                yield b": keep-alive\n\n"
            await asyncio.sleep(SSE_INTERVAL_S)
            idle += SSE_INTERVAL_S

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# ---- stations -----------------------------------------------------------------------------


@router.get("/stations", response_class=HTMLResponse)
def station_list(request: Request, q: str = "", commune: str = "", state: str = "", kind: str = "",
                 page: int = 1) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        result = queries.stations(s, q=q[:100], commune_id=to_int(commune), state=state, kind=kind,
                                  page=page, scope=ctx.scope)
        communes = queries.communes(s, ctx.scope)
    return render(request, "stations.html", ctx=ctx, result=result, communes=communes,
                  f={"q": q[:100], "commune": to_int(commune), "state": state, "kind": kind})


@router.get("/stations/{device_id}", response_class=HTMLResponse)
def station_detail(request: Request, device_id: int) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        try:
            device = visible_device(s, ctx.user, device_id)  # another area's station: not found
        except NotFound:
            return render(request, "error.html", status=404, ctx=ctx,
                          message=("Không tìm thấy trạm {id}.", {"id": device_id}))
        commune = s.get(Area, device.commune_id)
        events = queries.recent_events(s, device_id)
        plays = queries.play_log(s, device_id=device_id, page_size=30)
    return render(request, "station.html", ctx=ctx, device=device, commune=commune, events=events,
                  plays=plays, telemetry=(device.reported or {}).get("telemetry") or {})


# ---- bulletins: upload, send, play log ----------------------------------------------------


def _bulletins_page(request: Request, ctx: Ctx, *, status: int = 200, error: Any = None,
                    selected: str | None = None, form: dict[str, Any] | None = None) -> Response:
    rt = runtime(request)
    with rt.db.session() as s:
        media = list(s.scalars(select(Media).order_by(Media.created_at.desc()).limit(30)))
        recent_q = select(Broadcast).order_by(Broadcast.created_at.desc()).limit(15)
        if ctx.scope is not None:
            recent_q = recent_q.where(Broadcast.id.in_(queries.broadcasts_in_scope(ctx.scope)))
        recent = list(s.scalars(recent_q))
        communes = queries.communes(s, ctx.scope)
    selected = selected or (media[0].sha256 if media else None)
    chosen = next((m for m in media if m.sha256 == selected), None)
    # The audio pipeline's notes on the chosen file (too quiet, clipped, ...), in the page's language.
    notes = [t(w["code"], ctx.lang, **(w.get("params") or {}))
             for w in (getattr(chosen, "warnings", None) or []) if w.get("code")]
    return render(request, "bulletins.html", status=status, ctx=ctx, media=media, recent=recent,
                  communes=communes, error=error, selected=selected, notes=notes, form=form or {})


@router.get("/bulletins", response_class=HTMLResponse)
def bulletins(request: Request, media: str | None = None) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
    return _bulletins_page(request, ctx, selected=media)


@router.post("/bulletins/upload", response_class=HTMLResponse)
async def upload(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.MEDIA_UPLOAD)
    upload_file = form.get("file")
    if upload_file is None or isinstance(upload_file, str) or not upload_file.filename:
        return _bulletins_page(request, ctx, status=422, error=("Hãy chọn một tệp âm thanh.", {}))
    name = upload_file.filename or "upload"
    try:
        stored = await run_in_threadpool(rt.media.ingest, upload_file.file, name)
    except UserError as exc:
        message = t(exc.key, ctx.lang, **exc.params)
        return _bulletins_page(request, ctx, status=exc.status, error=(message, {}))
    with rt.db.session() as s:
        is_new = s.get(Media, stored.sha256) is None
        record_media(s, stored, name, ctx.user.id)  # the same row the API's upload writes
        if is_new:
            audit.record(s, ctx.user.id, "media.upload", "media", stored.sha256, name=name)
    return redirect(f"/bulletins?media={stored.sha256}&ok=uploaded")


def _targets(s: Any, ctx: Ctx, form: Any) -> Targets:
    mode = str(form.get("target", ""))
    if mode == "all":
        if ctx.scope is None:
            return Targets(all=True)
        return Targets(communes=sorted(ctx.scope))
    if mode == "communes":
        ids = [i for i in (to_int(v) for v in form.getlist("communes")) if i is not None]
        if not all_in_scope(s, ctx.user, ids):
            raise Forbidden()
        return Targets(communes=ids)
    if mode == "stations":
        words = [w for w in str(form.get("stations", "")).replace(";", ",").replace(" ", ",").split(",") if w]
        ids = {i for i in (to_int(w) for w in words) if i is not None}
        uids = [w for w in words if to_int(w) is None]
        rows = list(s.execute(select(Device.id, Device.commune_id).where(
            (Device.id.in_(ids)) | (Device.uid.in_(uids)))))
        if not all_in_scope(s, ctx.user, [c for _i, c in rows]):
            raise Forbidden()
        return Targets(devices=[i for i, _c in rows] or [-1])
    raise ValueError("no target")


@router.post("/bulletins/send", response_class=HTMLResponse)
async def send(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.BROADCAST_SEND)
    values = {k: str(form.get(k, "")) for k in ("title", "media_sha256", "target", "stations", "start_local",
                                                 "priority")}
    values["communes"] = [to_int(v) for v in form.getlist("communes")]
    priority = values["priority"] or "normal"
    if priority not in ("normal", "priority"):
        raise Forbidden()  # emergency goes through its own page (docs/panel.md)
    start_at = None
    if values["start_local"]:
        try:
            naive = datetime.fromisoformat(values["start_local"])
            start_at = naive.replace(tzinfo=ZoneInfo(rt.settings.timezone)).astimezone(UTC)
        except ValueError:
            return _bulletins_page(request, ctx, status=422, form=values,
                                   error=("Thời điểm phát không hợp lệ.", {}))
    try:
        with rt.db.session() as s:
            targets = _targets(s, ctx, form)
            req = broadcasts.BroadcastCreate(
                title=values["title"].strip(), media_sha256=values["media_sha256"], targets=targets,
                start_at=start_at, priority=priority,
            )
            # The same use case as the API: the area's broadcast policy and content approval
            # apply; what the sender may not approve is saved as a draft for an approver.
            bc = sending.send(s, ctx.user, req).broadcast
            s.commit()
            bc_id, airs = bc.id, bc.status == BroadcastStatus.SCHEDULED
    except (ValidationError, ValueError) as exc:
        problems = exc.errors() if isinstance(exc, ValidationError) else []
        fields = {e["loc"][0] for e in problems if e["loc"]}
        if "title" in fields:
            error = ("Hãy nhập tiêu đề bản tin.", {})
        elif "media_sha256" in fields:
            error = ("Hãy chọn một bản tin âm thanh.", {})
        else:
            error = ("Hãy chọn nơi phát: tất cả, một số xã hoặc một số trạm.", {})
        return _bulletins_page(request, ctx, status=422, form=values, error=error)
    except UserError as exc:
        return _bulletins_page(request, ctx, status=exc.status, form=values,
                               error=(t(exc.key, ctx.lang, **exc.params), {}))
    if not airs:
        return redirect(f"/playlog?broadcast_id={bc_id}&ok=draft")
    return redirect(f"/playlog?broadcast_id={bc_id}&ok=sent")


# ---- approval queue ---------------------------------------------------------------------------


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        ctx.require(Action.BROADCAST_APPROVE)
        drafts = queries.drafts(s, ctx.scope)
    return render(request, "approvals.html", ctx=ctx, drafts=drafts)


@router.post("/approvals/{broadcast_id}/approve", response_class=HTMLResponse)
async def approve(request: Request, broadcast_id: int) -> Response:
    rt, _form, ctx = await authorized_form(request, Action.BROADCAST_APPROVE)
    try:
        with rt.db.session() as s:
            user = s.get(User, ctx.user.id)
            assert user is not None
            sending.approve(s, user, broadcast_id)  # checks the area too; queues the dispatch
    except UserError as exc:
        if exc.status == 403:
            raise Forbidden() from exc
        with rt.db.session() as s:
            drafts = queries.drafts(s, ctx.scope)
        return render(request, "approvals.html", status=exc.status, ctx=ctx, drafts=drafts,
                      error=t(exc.key, ctx.lang, **exc.params))
    return redirect(f"/playlog?broadcast_id={broadcast_id}&ok=approved")


@router.get("/playlog", response_class=HTMLResponse)
def playlog(request: Request, broadcast_id: str = "", page: int = 1) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        bc_id = to_int(broadcast_id)
        broadcast: Broadcast | None = None
        if bc_id:
            try:  # the API's rule (GET /broadcasts/{id}): reaches the user's area, or they sent it
                broadcast = sending.get(s, ctx.user, bc_id)
            except NotFound:
                broadcast = None  # not in this user's area
        result = queries.play_log(s, broadcast_id=bc_id, scope=ctx.scope, page=page)
        summary: dict[str, int] = {}
        if broadcast is not None:
            for (st,) in s.execute(select(PlayLog.status).where(PlayLog.broadcast_id == broadcast.id)):
                summary[st] = summary.get(st, 0) + 1
            expected = len(broadcast.deliveries)
        else:
            expected = 0
    return render(request, "playlog.html", ctx=ctx, result=result, broadcast=broadcast, summary=summary,
                  expected=expected, bc_id=bc_id)


# ---- users (admin) --------------------------------------------------------------------------


def _users_page(request: Request, ctx: Ctx, *, status: int = 200, error: str | None = None,
                form: dict[str, Any] | None = None) -> Response:
    with runtime(request).db.session() as s:
        users = list(s.scalars(select(User).order_by(User.username)))
        areas = list(s.scalars(select(Area).order_by(Area.level, Area.name)))
    names = {a.id: a.name for a in areas}
    return render(request, "users.html", status=status, ctx=ctx, users=users, areas=areas, area_names=names,
                  roles=ROLES, error=error, form=form or {})


@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
    ctx.require(Action.USER_MANAGE)
    return _users_page(request, ctx)


@router.post("/admin/users", response_class=HTMLResponse)
async def create_user(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.USER_MANAGE)
    values = {k: str(form.get(k, "")) for k in ("username", "role", "area_id")}
    try:
        with rt.db.session() as s:
            accounts.create_user(s, ctx.user, values["username"], str(form.get("password", "")),
                                 values["role"], to_int(values["area_id"]))
    except accounts.AccountError as exc:
        return _users_page(request, ctx, status=422, error=str(exc), form=values)
    return redirect("/admin/users?ok=user")


@router.post("/admin/users/{user_id}/active", response_class=HTMLResponse)
async def set_user_active(request: Request, user_id: int) -> Response:
    rt, form, ctx = await authorized_form(request, Action.USER_MANAGE)
    try:
        with rt.db.session() as s:
            accounts.set_active(s, ctx.user, user_id, str(form.get("active")) == "1")
    except accounts.AccountError as exc:
        return _users_page(request, ctx, status=422, error=str(exc))
    return redirect("/admin/users?ok=user_state")


def error_page(request: Request, status: int, message: str) -> Response:
    return with_headers(render(request, "error.html", status=status, ctx=None, message=(message, {})))


__all__ = ["BadCsrf", "Forbidden", "error_page", "router"]
