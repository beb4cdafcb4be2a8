"""Panel pages: log in and out, language, the user's own password."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from controller.db.models import User
from controller.services import audit, auth
from controller.services.auth import login_now
from controller.web.i18n import LANG_COOKIE, LANGS
from controller.web.panel import (
    check_csrf,
    current,
    lang_of,
    redirect,
    render,
    runtime,
    safe_next,
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
