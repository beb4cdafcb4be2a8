"""Panel page: the area tree for admins, and importing a province from the packages.

The same use-case as `POST /api/v1/areas/import` and `communecast areas import`
(controller/usecases/areas.py): the communes, their official codes and former names come
from the administrative-unit packages, never typed by hand (docs/areas.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select

from controller.core.errors import UserError
from controller.core.permissions import Action
from controller.db.models import Area
from controller.usecases import areas as area_cases
from controller.web.pagekit import authorized_form, page_ctx, user_error
from controller.web.panel import Ctx, render, runtime

router = APIRouter(include_in_schema=False)


def _page(request: Request, ctx: Ctx, *, status: int = 200, **values: Any) -> Response:
    with runtime(request).db.session() as s:
        provinces = list(s.scalars(select(Area).where(Area.level == "province").order_by(Area.name)))
        counts = dict(s.execute(select(Area.parent_id, func.count()).where(Area.level == "commune")
                                .group_by(Area.parent_id)).all())  # fmt: skip
        groups = s.scalar(select(func.count()).select_from(Area).where(Area.level == "group")) or 0
    rows = [{"name": p.name, "code": p.code or "", "communes": counts.get(p.id, 0)} for p in provinces]
    shown = {"error": None, "result": None, "dry_run": False, "ref": "", **values}
    return render(request, "areas.html", status=status, ctx=ctx, provinces=rows, groups=groups, **shown)


@router.get("/admin/areas", response_class=HTMLResponse)
def areas_page(request: Request) -> Response:
    ctx = page_ctx(request, Action.USER_MANAGE)  # admins: the tree is the whole system's
    return _page(request, ctx)


@router.post("/admin/areas/import", response_class=HTMLResponse)
async def import_province(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.USER_MANAGE)
    ref = str(form.get("province", "")).strip()
    dry_run = str(form.get("dry_run", "")) == "1"
    if not ref:
        return _page(request, ctx, status=422, error=("Nhập mã hoặc tên tỉnh, thành phố.", {}), ref=ref)
    try:
        with rt.db.session() as s:
            result = area_cases.import_province(s, ctx.user, ref, dry_run=dry_run)
            if dry_run:
                s.rollback()
    except UserError as exc:
        return _page(request, ctx, status=exc.status, error=user_error(exc, ctx.lang), ref=ref)
    return _page(request, ctx, result=result, dry_run=dry_run, ref=ref)
