"""Panel plumbing: templates, the logged-in user, CSRF and permission checks, error pages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from controller.core.permissions import Action, can, communes_in_scope
from controller.db.models import Area, User
from controller.db.models_web import WebSession
from controller.db.statuses import PlayStatus
from controller.i18n import formats
from controller.runtime import Runtime
from controller.web import words
from controller.web.i18n import LANG_COOKIE, LANGS, fmt_dt, gettext_for
from controller.web.sessions import SESSION_COOKIE, csrf_ok, load_session

HERE = Path(__file__).resolve().parent
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["num"] = lambda value, digits=None: formats.number(value, digits)  # 1.234,5 (Babel)
templates.globals["play_reason"] = words.play_reason  # a station's reason as a sentence (issue 20)
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; worker-src 'self'; manifest-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

ROLE_NAMES = {
    "admin": "Quản trị hệ thống", "province": "Cán bộ cấp tỉnh",
    "group": "Cán bộ phụ trách cụm xã", "district": "Cán bộ phụ trách cụm xã",
    "commune": "Cán bộ cấp xã", "approver": "Người duyệt nội dung", "technician": "Kỹ thuật viên",
    "viewer": "Người xem", "operator": "Cán bộ vận hành",
}  # fmt: skip
NOTICES = {  # fixed messages shown after a redirect (?ok=...): never text from the URL
    "media_saved": "Đã lưu thông tin bản ghi âm.",
    "media_deleted": "Đã xoá bản ghi âm.",
    "uploaded": "Đã tải lên bản tin. Nghe thử trước khi phát.",
    "sent": "Đã gửi lệnh phát tới các trạm.",
    "sent_broker_down": "Đã lưu lệnh phát, nhưng máy chủ MQTT hiện không trả lời: các trạm sẽ nhận "
                        "khi kết nối trở lại và có thể phát trễ.",
    "draft": "Đã lưu bản tin. Bản tin sẽ được phát khi người có quyền duyệt.",
    "approved": "Đã duyệt. Lệnh phát đã được gửi tới các trạm.",
    "password": "Đã đổi mật khẩu. Các phiên đăng nhập khác đã bị đăng xuất.",
    "user": "Đã tạo tài khoản.",
    "user_state": "Đã cập nhật tài khoản.",
    # feature pages (routes_*.py)
    "schedule_saved": "Đã lưu lịch phát. Lịch đã được áp dụng.",
    "schedule_draft": "Đã lưu lịch phát. Lịch sẽ được phát khi người có quyền duyệt.",
    "schedule_approved": "Đã duyệt lịch phát. Các trạm sẽ phát theo lịch.",
    "schedule_deleted": "Đã xoá lịch phát.",
    "led_sent": "Đã gửi nội dung tới các bảng điện tử.",
    "led_cancelled": "Đã gỡ nội dung khỏi các bảng điện tử.",
    "code_issued": "Đã tạo mã kích hoạt mới. Mã cũ (nếu có) không còn dùng được.",
    "diag_sent": "Đã gửi lệnh kiểm tra tới trạm.",
    "alarm_acked": "Đã xác nhận cảnh báo.",
    "emergency_cancelled": "Đã dừng phát khẩn cấp.",
    "position_saved": "Đã lưu vị trí trạm.",
    # alarms where people are, emergency presets (issue 20 items 8 and 9)
    "alerts": "Đã lưu cài đặt nhận cảnh báo.",
    "preset_saved": "Đã lưu mẫu thông báo khẩn cấp.",
    "preset_reset": "Đã đưa mẫu về nội dung mặc định.",
    # the calendar's "Đổi giờ" (routes_calendar.py)
    "broadcast_moved": "Đã đổi giờ phát. Các trạm sẽ nhận giờ mới.",
    "broadcast_moved_draft": "Đã đổi giờ phát. Bản tin sẽ được phát khi người có quyền duyệt lại.",
}
EVENT_KINDS = {
    "ack": "Đã nhận lệnh", "rejected": "Từ chối lệnh", "play_started": "Bắt đầu phát",
    "play_finished": "Phát xong", "interrupted": "Bị ngắt", "play_failed": "Lỗi phát", "missed": "Bị lỡ",
    "fault": "Sự cố phần cứng",
    "recovered": "Hết sự cố",  # e.g. a relayed stream is back after dead air (docs/live.md)
}  # fmt: skip
PLAY_STATUS = {
    PlayStatus.PLAYING: "Đang phát", PlayStatus.PLAYED: "Đã phát", PlayStatus.INTERRUPTED: "Bị ngắt",
    PlayStatus.FAILED: "Lỗi phát", PlayStatus.MISSED: "Bị lỡ",
}  # fmt: skip


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class Forbidden(Exception):
    """The role or area does not allow this: a 403 page (never a hidden redirect)."""


class BadCsrf(Exception):
    pass


@dataclass
class Ctx:
    """The logged-in user as a page sees them."""

    request: Request
    rt: Runtime
    user: User
    web_session: WebSession
    scope: set[int] | None
    lang: str

    def can(self, action: Action | str) -> bool:
        return can(self.user, action)

    def require(self, action: Action | str) -> None:
        if not self.can(action):
            raise Forbidden()


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "vi")
    return lang if lang in LANGS else "vi"


def current(request: Request, s: Session) -> Ctx:
    """The session's user (and their area scope), or a redirect to /login."""
    row = load_session(s, request.cookies.get(SESSION_COOKIE))
    if row is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    user = row.user
    return Ctx(request, runtime(request), user, row, communes_in_scope(s, user), lang_of(request))


async def check_csrf(ctx: Ctx, form: Any) -> None:
    if not csrf_ok(ctx.web_session.csrf_token, form.get("csrf")):
        raise BadCsrf()


def safe_next(value: str | None) -> str:
    """Only same-site paths: never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def render(request: Request, name: str, *, status: int = 200, ctx: Ctx | None = None,
           lang: str | None = None, **values: Any) -> HTMLResponse:
    rt = runtime(request)
    lang = ctx.lang if ctx else (lang or lang_of(request))
    _ = gettext_for(lang)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    area_name = ""
    if ctx and ctx.user.area_id:
        with rt.db.session() as s:
            area = s.get(Area, ctx.user.area_id)
            area_name = area.name if area else ""
    body = templates.get_template(name).render(
        _=_, lang=lang, user=ctx.user if ctx else None, ctx=ctx,
        csrf=ctx.web_session.csrf_token if ctx else "",
        can=(ctx.can if ctx else (lambda _a: False)), Action=Action, area_name=area_name,
        dt=lambda v, seconds=False: fmt_dt(v, rt.settings.timezone, seconds=seconds),
        role_name=lambda r: _(ROLE_NAMES.get(r, r)), play_status=lambda st: _(PLAY_STATUS.get(st, st)),
        event_kind=lambda k: _(EVENT_KINDS[k]) if k in EVENT_KINDS else k,
        notice=_(NOTICES[request.query_params["ok"]]) if request.query_params.get("ok") in NOTICES else None,
        here=here, here_q=quote(here, safe=""), path=request.url.path, panel_feature=panel_feature,
        panel_tz=rt.settings.timezone, **values,
    )  # fmt: skip
    return with_headers(HTMLResponse(body, status_code=status))


def panel_feature(name: str) -> bool:
    """Is a feature's service there yet (`controller/services/<name>`)? Its nav link waits for it."""
    import importlib.util

    try:
        return importlib.util.find_spec(f"controller.services.{name}") is not None
    except ImportError:
        return False


def with_headers(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
