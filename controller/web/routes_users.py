"""Panel pages: user accounts (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from controller.core.permissions import ROLES, Action
from controller.db.models import Area, User
from controller.web import accounts
from controller.web.pagekit import authorized_form, to_int
from controller.web.panel import (
    Ctx,
    current,
    redirect,
    render,
    runtime,
)

router = APIRouter(include_in_schema=False)


# ---- users (admin) --------------------------------------------------------------------------


def _users_page(request: Request, ctx: Ctx, *, status: int = 200, error: str | None = None,
                form: dict[str, Any] | None = None) -> Response:
    with runtime(request).db.session() as s:
        users = list(s.scalars(select(User).order_by(User.username)))
        areas = list(s.scalars(select(Area).order_by(Area.name)))
    names = {a.id: a.name for a in areas}
    # The picker (docs/areas.md): provinces, groups of communes, then "Tỉnh › Xã", "Xã › Thôn".
    levels = [("province", "Tỉnh, thành phố"), ("group", "Cụm xã (nhóm xã do một cán bộ phụ trách)"),
              ("commune", "Xã, phường, đặc khu"), ("village", "Thôn, tổ dân phố")]
    area_choices = [
        (label, [(a.id, f"{names[a.parent_id]} › {a.name}" if a.parent_id in names else a.name)
                 for a in areas if a.level == level])
        for level, label in levels
    ]
    return render(request, "users.html", status=status, ctx=ctx, users=users, areas=areas, area_names=names,
                  area_choices=[(label, rows) for label, rows in area_choices if rows],
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
