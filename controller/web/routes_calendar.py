"""Moving a one-off bulletin from the calendar ("Đổi giờ"): a day (dd/mm/yyyy) and a time
(24-hour HH:MM), typed, read on the server, and handed to the use case the API's
PATCH /api/v1/broadcasts/{id} calls (`usecases.broadcasts.reschedule`): the same right, area,
policy and approval rules, the stations told in the same transaction. The page never decides
who may move what; it only says what the use case answered.

The form page asks the use case too: it runs the move to the bulletin's own time inside a
transaction that is rolled back, so a bulletin that has started, was cancelled or is an
emergency says why at once instead of offering a form that can only fail.

Drag and drop in the month and week views (static/calendar-drag.js) posts the same form to the
same route with `Accept: application/json`: the same CSRF check, right, use case and refusals,
answered as `{"ok": true, "notice", "location"}` or `{"ok": false, "message"}` (the message in
the page's language, as the form page would show it) with the form's status code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action
from controller.db.models import Broadcast
from controller.db.statuses import BroadcastStatus
from controller.services.policy import PolicyViolation
from controller.usecases import broadcasts as sending
from controller.web import agenda as agenda_view
from controller.web.i18n import gettext_for
from controller.web.pagekit import BAD_DATE, authorized_form, dmy, page_ctx, parse_dmy, tz, user_error
from controller.web.panel import NOTICES, Ctx, Forbidden, redirect, render, runtime, with_headers

router = APIRouter(include_in_schema=False)
BAD_TIME = "Giờ không hợp lệ. Hãy viết giờ:phút theo 24 giờ, ví dụ 07:30."
NOT_FOUND = "Không tìm thấy bản tin phát số {id}."
CLOCK = re.compile(r"\s*(\d{1,2}):(\d{2})\s*")
BLOCKING = (403, 404, 409)  # the use case's answers that no other time would change


def parse_clock(value: str) -> time:
    """HH:MM, 24-hour (07:30, 7:30, 19:05). ValueError otherwise (7:30 PM, 25:00, 0730)."""
    m = CLOCK.fullmatch(value)
    if not m:
        raise ValueError(value)
    return time(int(m.group(1)), int(m.group(2)))  # ValueError past 23:59


def wants_json(request: Request) -> bool:
    """The calendar's drag and drop (calendar-drag.js) asks for JSON; the form asks for a page."""
    return "application/json" in request.headers.get("accept", "")


def _json(status: int, body: dict[str, Any]) -> Response:
    return with_headers(JSONResponse(body, status_code=status))


def _json_refusal(ctx: Ctx, status: int, message: Any) -> Response:
    """A refusal for the drag and drop: the words the form page would show, in the page's language."""
    text, params = message
    return _json(status, {"ok": False, "message": gettext_for(ctx.lang)(text, **params)})


def _refused(request: Request, ctx: Ctx, exc: UserError, broadcast_id: int) -> Response:
    """A refusal that is not about the time typed: the panel's 403 page, a 404, or an error page."""
    if exc.status == 403 and exc.key == "auth.forbidden":
        raise Forbidden() from exc
    if wants_json(request):
        found = (NOT_FOUND, {"id": broadcast_id}) if exc.status == 404 else user_error(exc, ctx.lang)
        return _json_refusal(ctx, exc.status, found)
    if exc.status == 404:
        return render(request, "error.html", status=404, ctx=ctx, message=(NOT_FOUND, {"id": broadcast_id}))
    return render(request, "error.html", status=exc.status, ctx=ctx, message=user_error(exc, ctx.lang))


def _facts(s: Session, ctx: Ctx, bc: Broadcast, zone: ZoneInfo) -> dict[str, Any]:
    _ = gettext_for(ctx.lang)
    local = bc.start_at.astimezone(zone)
    return {"id": bc.id, "title": bc.title, "at": local.strftime("%d/%m/%Y %H:%M"),
            "where": agenda_view.where(s, dict(bc.targets or {}), _, {}),
            "draft": bc.status == BroadcastStatus.DRAFT,
            "day": dmy(local.date()), "clock": local.strftime("%H:%M"),
            "iso_day": local.date().isoformat()}  # fmt: skip


def _page(request: Request, ctx: Ctx, facts: dict[str, Any], form: dict[str, str], *, status: int = 200,
          error: Any = None, blocked: Any = None, policy_blocked: bool = False) -> Response:  # fmt: skip
    if wants_json(request) and error is not None:
        return _json_refusal(ctx, status, error)
    return render(request, "broadcast_move.html", status=status, ctx=ctx, bc=facts, form=form, error=error,
                  blocked=blocked, policy_blocked=policy_blocked)  # fmt: skip


@router.get("/schedules/broadcasts/{broadcast_id}/move", response_class=HTMLResponse)
def move_form(request: Request, broadcast_id: int) -> Response:
    ctx = page_ctx(request, Action.BROADCAST_SEND)
    zone = tz(request)
    with runtime(request).db.session() as s:
        try:
            bc = sending.get(s, ctx.user, broadcast_id)  # another area's: not found, as the API
        except NotFound as exc:
            return _refused(request, ctx, exc, broadcast_id)
        facts = _facts(s, ctx, bc, zone)
        blocked = None
        try:  # may it move at all? The use case says, on a transaction rolled back.
            sending.reschedule(s, ctx.user, broadcast_id, bc.start_at, tz=zone)
        except UserError as exc:
            if exc.status in BLOCKING:
                if exc.status == 403 and exc.key == "auth.forbidden":
                    raise Forbidden() from exc
                blocked = user_error(exc, ctx.lang)
        finally:
            s.rollback()
    form = {"day": facts["day"], "clock": facts["clock"], "override_reason": ""}
    return _page(request, ctx, facts, form, blocked=blocked)


@router.post("/schedules/broadcasts/{broadcast_id}/move", response_class=HTMLResponse)
async def move(request: Request, broadcast_id: int) -> Response:
    rt, posted, ctx = await authorized_form(request, Action.BROADCAST_SEND)
    zone = ZoneInfo(rt.settings.timezone)
    form = {k: str(posted.get(k, "")).strip() for k in ("day", "clock", "override_reason")}
    with rt.db.session() as s:
        try:
            bc = sending.get(s, ctx.user, broadcast_id)
        except NotFound as exc:
            return _refused(request, ctx, exc, broadcast_id)
        facts = _facts(s, ctx, bc, zone)
        try:
            day = parse_dmy(form["day"])
            if not 2000 <= day.year <= 2100:  # the API's bound too (schemas BroadcastPatch)
                raise ValueError(form["day"])
        except ValueError:
            return _page(request, ctx, facts, form, status=422, error=(BAD_DATE, {}))
        try:
            clock = parse_clock(form["clock"])
        except ValueError:
            return _page(request, ctx, facts, form, status=422, error=(BAD_TIME, {}))
        new_start = datetime.combine(day, clock, zone).astimezone(UTC)
        try:
            # The same use case as PATCH /api/v1/broadcasts/{id}: right, area, policy, approval.
            moved = sending.reschedule(s, ctx.user, broadcast_id, new_start,
                                       override_reason=form["override_reason"] or None, tz=zone)  # fmt: skip
        except PolicyViolation as exc:
            return _page(request, ctx, facts, form, status=422, error=user_error(exc, ctx.lang),
                         policy_blocked=True)  # fmt: skip
        except UserError as exc:
            if exc.status in BLOCKING:
                return _refused(request, ctx, exc, broadcast_id)
            return _page(request, ctx, facts, form, status=exc.status, error=user_error(exc, ctx.lang))
        approved = moved.approved
        s.commit()  # the stations' new desired state is queued in this same transaction
    local = new_start.astimezone(zone).date()
    ok = "broadcast_moved" if approved else "broadcast_moved_draft"
    location = f"/schedules?view=month&month={local:%Y-%m}&day={local.isoformat()}&ok={ok}#day"
    if wants_json(request):
        return _json(200, {"ok": True, "ok_key": ok, "notice": gettext_for(ctx.lang)(NOTICES[ok]),
                           "location": location, "start": new_start.isoformat()})  # fmt: skip
    return redirect(location)
