"""The stations list in bulk (issue 20, item 5): filters, checkboxes and bulk actions, CSV import
with a preview step, CSV export of the filtered list.

Every bulk action goes through `controller.usecases.stations`, which checks the caller's right
and area for every selected station before anything happens (one outside: nothing is done).
The import reuses the API's CSV parser (`enrollment.parse_csv`) and `devices.create`, run once
in a transaction that is rolled back (the preview) and once for real (all or nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from controller.core.errors import UserError
from controller.core.i18n import t
from controller.core.permissions import Action
from controller.db.models import Area
from controller.schemas.diagnostics import DiagnosticRequest
from controller.services import devices, enrollment
from controller.services.station_filter import STATES
from controller.usecases import stations as bulk
from controller.web import queries
from controller.web.i18n import gettext_for
from controller.web.pagekit import Message, authorized_form, page_ctx, to_int, user_error
from controller.web.panel import Ctx, redirect, render, runtime, with_headers

router = APIRouter(include_in_schema=False)
IMPORT_MAX_BYTES = 512 * 1024  # the preview carries the file back in a form field
ACTIONS = {  # bulk action -> its name on the page
    "test_tone": "Phát tiếng thử",
    "set_volume": "Đặt âm lượng",
    "led_test_pattern": "Hiện mẫu thử",
    "retire": "Ngừng sử dụng",
}
DONE = {  # ?done=... after a bulk action: fixed texts, never text from the URL
    "test_tone": "Đã gửi lệnh phát tiếng thử tới {n} trạm.",
    "set_volume": "Đã gửi lệnh đặt âm lượng tới {n} trạm.",
    "led_test_pattern": "Đã gửi lệnh hiện mẫu thử tới {n} bảng.",
    "retire": "Đã ngừng sử dụng {n} trạm.",
    "imported": "Đã nhập {n} trạm.",
}


@dataclass(frozen=True)
class Filters:
    q: str = ""
    commune: int | None = None
    group: int | None = None
    state: str = ""
    kind: str = ""

    @classmethod
    def of(cls, data: Any) -> Filters:
        state = str(data.get("state", ""))
        return cls(q=str(data.get("q", ""))[:100], commune=to_int(data.get("commune")),
                   group=to_int(data.get("group")), state=state if state in STATES else "",
                   kind=str(data.get("kind", ""))[:16])

    def query(self) -> str:
        """The filters as a query string (for the pager, the export link and back after an action)."""
        pairs = {"q": self.q, "commune": self.commune or "", "group": self.group or "",
                 "state": self.state, "kind": self.kind}
        return urlencode({k: v for k, v in pairs.items() if v})


def _list(request: Request, ctx: Ctx, f: Filters, page: int = 1, *, status: int = 200,
          error: Message | None = None) -> Response:
    with runtime(request).db.session() as s:
        result = queries.stations(s, q=f.q, commune_id=f.commune, group_id=f.group, state=f.state,
                                  kind=f.kind, page=page, scope=ctx.scope)
        communes = queries.communes(s, ctx.scope)
        groups = queries.groups(s, ctx.scope)
    done_key = request.query_params.get("done", "")
    done = (DONE[done_key], {"n": to_int(request.query_params.get("n")) or 0}) if done_key in DONE else None
    actions = [(k, v) for k, v in ACTIONS.items()
               if ctx.can(Action.DEVICE_MANAGE if k == "retire" else Action.DEVICE_TEST)]
    return render(request, "stations.html", status=status, ctx=ctx, result=result, communes=communes,
                  groups=groups, f=f, fq=f.query(), actions=actions, error=error, done=done)


@router.get("/stations", response_class=HTMLResponse)
def station_list(request: Request, page: int = 1) -> Response:
    return _list(request, page_ctx(request), Filters.of(request.query_params), page)


# -- bulk actions ------------------------------------------------------------------------------------
@router.post("/stations/bulk", response_class=HTMLResponse)
async def bulk_action(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.VIEW)
    f = Filters.of({k.removeprefix("f_"): v for k, v in form.items() if k.startswith("f_")})
    ids = [i for i in (to_int(v) for v in form.getlist("ids")) if i is not None]
    action = str(form.get("action", ""))
    if action not in ACTIONS:
        return _list(request, ctx, f, status=422, error=("Hãy chọn một thao tác.", {}))
    with rt.db.session() as s:
        try:
            if action == "retire":
                if form.get("confirm") != "yes":  # first the list of what will stop, then the real thing
                    chosen = bulk.selected(s, ctx.user, Action.DEVICE_MANAGE, ids)
                    names = dict(s.execute(select(Area.id, Area.name).where(
                        Area.id.in_({d.commune_id for d in chosen}))).all())
                    return render(request, "stations_retire.html", ctx=ctx, stations=chosen, names=names,
                                  fq=f.query(), filters=f)
                retired = bulk.bulk_retire(rt.broker_accounts, s, ctx.user, ids)
                await bulk.forget_desired(rt.station_commands.bus, retired)
                count = len(retired)
            else:
                params: dict[str, Any] = {}
                if action == "set_volume":
                    params["volume"] = max(0, min(100, to_int(form.get("volume")) or 0))
                rows = await bulk.bulk_diagnostic(rt.station_commands, s, ctx.user, ids,
                                                  DiagnosticRequest(action=action, params=params))
                count = len(rows)
        except UserError as exc:
            s.rollback()
            return _list(request, ctx, f, status=exc.status, error=user_error(exc, ctx.lang))
    back = f.query()
    return redirect(f"/stations?{back + '&' if back else ''}done={action}&n={count}")


# -- CSV export --------------------------------------------------------------------------------------
@router.get("/stations.csv")
def export_csv(request: Request) -> Response:
    """The filtered list as CSV (`usecases/stations.py export_csv`, as `GET /api/v1/devices/export.csv`)."""
    ctx = page_ctx(request)
    f = Filters.of(request.query_params)
    with runtime(request).db.session() as s:
        body = bulk.export_csv(s, ctx.user, bulk.ListFilter(q=f.q, commune=f.commune, group=f.group,
                                                            state=f.state, kind=f.kind))
    return with_headers(Response(body, media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="tram-loa.csv"'}))


# -- CSV import --------------------------------------------------------------------------------------
@dataclass
class ImportCheck:
    rows: list[dict[str, Any]]
    problems: list[Message]


def _check_import(s: Any, ctx: Ctx, data: bytes) -> ImportCheck:
    """Parse and try every row in the caller's name (area included); the caller commits or rolls back."""
    requests, problems = enrollment.parse_csv(s, data)
    if problems:
        return ImportCheck([], [line_problem(p, ctx.lang) for p in problems])
    rows, refusals = [], []
    for line, req in enumerate(requests, start=2):
        try:
            device = devices.create(s, req, ctx.user.id, actor=ctx.user)
        except UserError as exc:
            problem = t(exc.key, ctx.lang, **exc.params)
            refusals.append(("Dòng {line}: {problem}", {"line": line, "problem": problem}))
            continue
        rows.append({"line": line, "name": device.name, "kind": device.kind,
                     "commune": s.get(Area, device.commune_id).name, "lat": device.lat, "lon": device.lon})
    return ImportCheck(rows, refusals)


WHAT_WRONG = {  # pydantic's error types (and the parser's own) in words
    "no_commune": "không có xã này",
    "missing": "bị trống", "string_too_short": "bị trống", "string_too_long": "quá dài",
    "string_pattern_mismatch": "không phải giá trị được chấp nhận",
    "float_parsing": "phải là một số", "int_parsing": "phải là một số nguyên",
    "greater_than": "nằm ngoài khoảng cho phép", "greater_than_equal": "nằm ngoài khoảng cho phép",
    "less_than": "nằm ngoài khoảng cho phép", "less_than_equal": "nằm ngoài khoảng cho phép",
    "too_long": "có quá nhiều giá trị",
}


def line_problem(p: enrollment.CsvProblem, lang: str) -> Message:
    """"Dòng 3: cột “kind” không phải giá trị được chấp nhận." — the line, the column and what is wrong."""
    column = p.column.split(".")[0] or "?"
    what = gettext_for(lang)(WHAT_WRONG.get(p.kind, "không hợp lệ"))
    return ("Dòng {line}: cột “{column}” {what}.", {"line": p.line, "column": column, "what": what})


@router.get("/stations-import", response_class=HTMLResponse)
def import_form(request: Request) -> Response:
    return render(request, "stations_import.html", ctx=page_ctx(request, Action.DEVICE_MANAGE), check=None)


@router.post("/stations-import", response_class=HTMLResponse)
async def import_csv(request: Request) -> Response:
    """First the preview (what would be created, or every problem by line; nothing stored), then,
    with `confirm=yes` and the same text, the import itself: all rows or none."""
    rt, form, ctx = await authorized_form(request, Action.DEVICE_MANAGE)
    upload = form.get("file")
    if upload is not None and hasattr(upload, "read"):
        data = await upload.read(IMPORT_MAX_BYTES + 1)
    else:
        data = str(form.get("csv_text", "")).encode("utf-8")
    if not data.strip():
        return render(request, "stations_import.html", status=422, ctx=ctx, check=None,
                      error=("Hãy chọn một tệp CSV.", {}))
    if len(data) > IMPORT_MAX_BYTES:
        return render(request, "stations_import.html", status=413, ctx=ctx, check=None,
                      error=("Tệp quá lớn cho trang này (tối đa 512 KB); hãy chia nhỏ tệp.", {}))
    confirm = form.get("confirm") == "yes"
    with rt.db.session() as s:
        try:
            check = _check_import(s, ctx, data)
        except UserError as exc:
            s.rollback()
            return render(request, "stations_import.html", status=exc.status, ctx=ctx, check=None,
                          error=user_error(exc, ctx.lang))
        if check.problems or not confirm:
            s.rollback()  # the preview stores nothing
            text = data.decode("utf-8-sig", errors="replace")
            return render(request, "stations_import.html", status=422 if check.problems else 200, ctx=ctx,
                          check=check, csv_text=text)
        s.commit()
    return redirect(f"/stations?done=imported&n={len(check.rows)}")
