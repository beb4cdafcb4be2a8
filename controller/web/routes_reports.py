"""Reports (play log as CSV/XLSX, monthly minutes per commune) and the audit log, in the panel.

The numbers and files come from `controller.services.reports` (the same code as the API's
/api/v1/reports); the panel adds the session, the role and the area: a scoped user exports
one commune of their own area at a time, so nothing outside it is ever in a file.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select

from controller.core.permissions import Action
from controller.db.models import AuditEntry, User
from controller.services import availability, reports
from controller.web import words
from controller.web.charts import Bar, bar_chart
from controller.web.i18n import gettext_for
from controller.web.pagekit import BAD_DATE, communes, dmy, page_ctx, parse_dmy, to_int, tz
from controller.web.panel import Ctx, Forbidden, render, runtime, with_headers

router = APIRouter(include_in_schema=False)
AUDIT_PAGE = 50
AUDIT_ACTIONS = {
    "user.login": "Đăng nhập",
    "user.password": "Đổi mật khẩu",
    "media.upload": "Tải lên bản tin",
    "media.tts": "Tạo bản tin bằng giọng đọc",
    "broadcast.create": "Tạo lệnh phát",
    "broadcast.approve": "Duyệt bản tin",
    "broadcast.send": "Gửi lệnh phát",
    "broadcast.cancel": "Huỷ lệnh phát",
    "broadcast.reschedule": "Đổi giờ lệnh phát",
    "broadcast.emergency": "Phát khẩn cấp",
    "schedule.create": "Tạo lịch phát",
    "schedule.update": "Sửa lịch phát",
    "schedule.approve": "Duyệt lịch phát",
    "schedule.delete": "Xoá lịch phát",
    "policy.override": "Phát ngoài quy định",
    "device.create": "Thêm trạm",
    "device.enrollment_code": "Tạo mã kích hoạt",
    "device.enroll": "Kích hoạt trạm",
    "device.retire": "Ngừng sử dụng trạm",
    "led.operator": "Gửi nội dung bảng điện tử",
    "led.cancel": "Gỡ nội dung bảng điện tử",
    "alarm.acknowledge": "Xác nhận cảnh báo",
    "device.diagnostic.test_tone": "Phát tiếng thử",
    "device.diagnostic.relay_click": "Bật/tắt rơ-le",
    "device.diagnostic.set_volume": "Đặt âm lượng",
    # the other actions the code records (issue 20: no action shown as its raw name)
    "alarm.resolve": "Đóng cảnh báo",
    "area.create": "Thêm địa bàn",
    "area.import": "Nhập danh mục địa bàn",
    "area.update": "Sửa địa bàn",
    "cap.receive": "Nhận cảnh báo CAP",
    "cap.draft": "Tạo bản tin nháp từ cảnh báo CAP",
    "cap.failed": "Không xử lý được cảnh báo CAP",
    "device.credentials": "Cấp lại khoá cho trạm",
    "live.end": "Kết thúc phát trực tiếp",
    "policy.update": "Sửa quy định phát",
    "relay.cancel": "Huỷ tiếp sóng",
    "update.upload": "Tải lên bản cập nhật phần mềm",
    "update.rollout": "Triển khai cập nhật phần mềm",
    "user.create": "Tạo tài khoản",
    "user.activate": "Mở khoá tài khoản",
    "user.deactivate": "Khoá tài khoản",
    "user.alert_prefs": "Đổi cách nhận cảnh báo",
    "device.position": "Đặt vị trí trạm",
    "device.village": "Đặt thôn, tổ dân phố của trạm",
    "emergency.preset": "Sửa mẫu phát khẩn cấp",
    "emergency.preset_reset": "Đưa mẫu phát khẩn cấp về mặc định",
    "media.update": "Sửa thông tin tệp âm thanh",
    "media.delete": "Xoá tệp âm thanh",
}


def _day(value: str) -> date | None:
    """A filter day as typed (dd/mm/yyyy; yyyy-mm-dd from the export links); None when empty.
    ValueError when it is not a day: the page says so (422) rather than quietly ignoring it."""
    return parse_dmy(value[:40]) if value.strip() else None


def _bad_day(request: Request, ctx: Ctx) -> Response:
    return render(request, "error.html", status=422, ctx=ctx, message=(BAD_DATE, {}))


def _filters(
    request: Request, ctx: Ctx, start: str, end: str, commune: str
) -> tuple[reports.Filters, dict[str, Any]]:
    """From/to are local days (inclusive); a scoped user always gets one commune of their own."""
    zone = tz(request)
    today = datetime.now(zone).date()
    d_from = _day(start) or today.replace(day=1)
    d_to = _day(end) or today
    commune_id = to_int(commune)
    if ctx.scope is not None:
        if commune_id is None and ctx.scope:
            commune_id = min(ctx.scope)
        if commune_id not in ctx.scope:
            raise Forbidden()
    f = reports.Filters(
        datetime.combine(d_from, time(0), zone),
        datetime.combine(d_to + timedelta(days=1), time(0), zone),
        commune_id,
        None if ctx.scope is None else frozenset(ctx.scope),  # the service filters by area too
        zone,
    )
    return f, {"from": d_from.isoformat(), "to": d_to.isoformat(), "from_text": dmy(d_from),
               "to_text": dmy(d_to), "commune": commune_id}  # fmt: skip


def _availability_kind(percent: float) -> str:
    """Red below 90 %, amber below 98 %: the stations a technician should look at first."""
    return "bad" if percent < 90 else "warn" if percent < 98 else ""


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, start: str = "", end: str = "", commune: str = "") -> Response:
    ctx = page_ctx(request, Action.REPORT_VIEW)
    _ = gettext_for(ctx.lang)
    try:
        f, shown = _filters(request, ctx, start, end, commune)
    except ValueError:
        return _bad_day(request, ctx)
    with runtime(request).db.session() as s:
        monthly = reports.monthly(s, f)
        up = availability.per_station(s, f, datetime.now(UTC))
        choices = communes(s, ctx.scope)
    query = f"start={shown['from']}&end={shown['to']}" + (
        f"&commune={shown['commune']}" if shown["commune"] else ""
    )
    return render(
        request,
        "reports.html",
        ctx=ctx,
        monthly=monthly,
        minutes_bars=bar_chart([Bar(f"{m['commune']} · {m['month']}", float(m["minutes"])) for m in monthly],
                               unit=_("phút"), lang=ctx.lang, title=_("Số phút phát theo tháng, từng xã")),
        availability_bars=bar_chart(
            [Bar(a.name, a.percent, href=f"/stations/{a.device_id}", kind=_availability_kind(a.percent))
             for a in up],
            unit="%", lang=ctx.lang, max_value=100.0, title=_("Tỉ lệ hoạt động của từng trạm")),
        availability_count=len(up),
        communes=choices,
        f=shown,
        query=query,
        all_ok=ctx.scope is None,
    )


@router.get("/reports/play-log.{fmt}")
async def export(request: Request, fmt: str, start: str = "", end: str = "", commune: str = "") -> Response:
    ctx = page_ctx(request, Action.REPORT_VIEW)
    if fmt not in ("csv", "xlsx"):
        raise Forbidden()
    try:
        f, _shown = _filters(request, ctx, start, end, commune)
    except ValueError:
        return _bad_day(request, ctx)

    def build() -> bytes:
        with runtime(request).db.session() as s:
            return reports.to_csv(s, f, ctx.lang) if fmt == "csv" else reports.to_xlsx(s, f, ctx.lang)

    body = await run_in_threadpool(build)
    name = "nhat-ky-phat" if ctx.lang == "vi" else "play-log"
    media = (
        "text/csv; charset=utf-8"
        if fmt == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    return with_headers(
        Response(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
        )
    )


def _audit_row(e: AuditEntry, who: str | None, zone: Any, _: Any) -> dict[str, Any]:
    """An audit entry in words (the raw object and detail only as a tooltip: issue 20)."""
    return {"e": e, "who": who, "object": words.audit_object(e.object_type, e.object_id, _),
            "words": words.audit_detail(e.detail, zone, _),
            "raw": f"{e.object_type} {e.object_id or ''} {e.detail or ''}"}  # fmt: skip


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    action: str = "",
    user: str = "",
    object_type: str = "",
    start: str = "",
    end: str = "",
    page: int = 1,
) -> Response:
    ctx = page_ctx(request, Action.AUDIT_VIEW)
    zone = tz(request)
    cond: list[Any] = []
    if action:
        cond.append(AuditEntry.action == action[:64])
    if object_type:
        cond.append(AuditEntry.object_type == object_type[:32])
    try:
        first, last = _day(start), _day(end)
    except ValueError:
        return _bad_day(request, ctx)
    if first is not None:
        cond.append(AuditEntry.ts >= datetime.combine(first, time(0), zone))
    if last is not None:
        cond.append(AuditEntry.ts < datetime.combine(last + timedelta(days=1), time(0), zone))
    with runtime(request).db.session() as s:
        if user:
            cond.append(AuditEntry.user_id.in_(select(User.id).where(User.username == user[:64])))
        total = s.scalar(select(func.count()).select_from(AuditEntry).where(*cond)) or 0
        pages = max(1, math.ceil(total / AUDIT_PAGE))
        page = min(max(page, 1), pages)
        rows = s.execute(
            select(AuditEntry, User.username)
            .outerjoin(User, User.id == AuditEntry.user_id)
            .where(*cond)
            .order_by(AuditEntry.id.desc())
            .limit(AUDIT_PAGE)
            .offset((page - 1) * AUDIT_PAGE)
        ).all()
        _ = gettext_for(ctx.lang)
        entries = [_audit_row(e, who, zone, _) for e, who in rows]
        for r in entries:
            s.expunge(r["e"])
        kinds = sorted(set(AUDIT_ACTIONS) | ({action} if action else set()))  # no scan of the whole log
    f = {"action": action, "user": user, "object_type": object_type, "start": start, "end": end}
    pager_q = urlencode({k: v for k, v in f.items() if v}) + "&" if any(f.values()) else ""
    return render(
        request,
        "audit.html",
        ctx=ctx,
        entries=entries,
        f=f,
        kinds=kinds,
        names=AUDIT_ACTIONS,
        result={"page": page, "pages": pages, "total": total},
        pager_q=pager_q,
    )
