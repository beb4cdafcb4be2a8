"""Recurring schedules in the panel: a week view, the recurrence builder, check before save.

The builder turns days of the week + times (or "every N hours") + start/until/skipped days
into one RRULE (`controller.services.rrule_text.build`) and says it back in plain
Vietnamese. "Kiểm tra" runs the real save path (`schedules.save`: policy, approval,
conflicts) inside a transaction that is rolled back, so what the page shows before saving
is exactly what saving would do; "Lưu" runs it again and commits.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, in_scope
from controller.db.models import Device, Media
from controller.db.models_schedules import Schedule
from controller.db.statuses import PLANNED_SCHEDULE, DeviceKind, ScheduleStatus
from controller.services import recurrence, rrule_text, schedules
from controller.services.policy import PolicyViolation
from controller.services.schedule_limits import Limits
from controller.services.targets import Targets, commune_ids, resolve
from controller.usecases import schedules as planning
from controller.web import agenda as agenda_view
from controller.web import calendar as month_view
from controller.web.i18n import gettext_for
from controller.web.pagekit import (
    Slot,
    authorized_form,
    communes,
    dmy,
    page_ctx,
    parse_dmy,
    targets_from_form,
    to_int,
    tz,
    user_error,
    week_grid,
)
from controller.web.panel import Ctx, Forbidden, redirect, render, runtime

router = APIRouter(include_in_schema=False)
RESOLUTION = {
    "preempts": "Lịch này được ưu tiên hơn: “{title}” sẽ bị ngắt hoặc phải chờ.",
    "preempted": "“{title}” được ưu tiên hơn: lịch này sẽ bị ngắt hoặc phải chờ.",
    "other_waits": "“{title}” sẽ chờ lịch này phát xong.",
    "waits": "Lịch này sẽ chờ “{title}” phát xong (có thể bị bỏ lỡ nếu chờ quá lâu).",
}
STATUS = {"active": "Đang áp dụng", "draft": "Chờ duyệt", "deleted": "Đã xoá"}
WEEK_DAYS = rrule_text.DAY_VI


@dataclass
class Row:
    schedule: Schedule
    text: str
    next_at: datetime | None
    stations: int


def _visible(s: Session, ctx: Ctx, schedule_id: int) -> Schedule | None:
    """The schedule if it reaches a station in the user's area (the API's GET /schedules/{id})."""
    try:
        return planning.get(s, ctx.user, schedule_id)
    except NotFound:
        return None


def _reach(s: Session, targets: Targets) -> Any:
    """The stations the targets name, as one SQL condition (no station rows loaded: 10,000 stations)."""
    return or_(Device.id.in_(targets.devices), Device.commune_id.in_(commune_ids(s, targets)))


def station_count(s: Session, targets: Targets, scope: set[int] | None) -> int:
    """The active speakers the targets name that the caller may see (`scope`: the caller's
    communes, `communes_in_scope`; None: all): a commune operator looking at a province-wide
    schedule counts their own stations, not the province's."""
    if targets.tags:
        found = resolve(s, targets, kind=DeviceKind.SPEAKER)
        return sum(1 for d in found if scope is None or d.commune_id in scope)
    q = (select(func.count()).select_from(Device)
         .where(Device.kind == DeviceKind.SPEAKER, Device.retired_at.is_(None),
                *in_scope(scope, Device.commune_id)))  # fmt: skip
    if not targets.all:
        q = q.where(_reach(s, targets))
    return s.scalar(q) or 0


def describe(sc: Schedule, lang: str) -> str:
    ex = [datetime.fromisoformat(e) for e in (sc.exdates or [])]
    return rrule_text.describe(
        sc.rrule,
        dtstart=datetime.fromisoformat(sc.dtstart),
        until=datetime.fromisoformat(sc.until) if sc.until else None,
        exdates=sorted({e.replace(hour=0, minute=0, second=0) for e in ex}),
        lang=lang,
    )


def _slots(s: Session, ctx: Ctx, monday: date, zone: Any, *, skip: int | None = None) -> list[Slot]:
    start = datetime.combine(monday, time(0), zone).astimezone(UTC)
    end = start + timedelta(days=7)
    out: list[Slot] = []
    for sc in planning.visible(s, ctx.user):  # the API's list: active and draft, oldest first
        if sc.id == skip or sc.status not in PLANNED_SCHEDULE:
            continue
        for occ in recurrence.occurrences(sc, start, end, limit=400):
            out.append(
                Slot(
                    occ.start.astimezone(zone),
                    sc.title,
                    "other" if sc.status == ScheduleStatus.ACTIVE else "draft",
                    f"/schedules/{sc.id}/edit",
                )
            )
    return out


def _week_param(request: Request, week: str) -> date:
    """The week view's first day: today by default (today's plays in view, not last Monday's)."""
    try:
        return date.fromisoformat(week)
    except ValueError:
        return datetime.now(tz(request)).date()


# auto: the agenda on a phone, the week grid on a wide screen; month: controller/web/calendar.py
VIEWS = ("auto", "week", "agenda", "month")


@router.get("/schedules", response_class=HTMLResponse)
def schedule_list(request: Request, week: str = "", view: str = "auto", month: str = "",
                  day: str = "") -> Response:  # fmt: skip
    ctx = page_ctx(request)
    zone = tz(request)
    view = view if view in VIEWS else "auto"
    monday = _week_param(request, week)  # the grid's first day (any weekday)
    now = datetime.now(UTC)
    plan = grid = cal = None
    with runtime(request).db.session() as s:
        if view == "month":  # the same entries (and area rules) as the agenda, over a month
            chosen = month_view.day_param(day)
            first = month_view.month_param(month, chosen, now.astimezone(zone).date())
            cal = month_view.build(s, ctx.user, zone, now, first, chosen, gettext_for(ctx.lang))
        else:
            plan = agenda_view.build(s, ctx.user, zone, now, gettext_for(ctx.lang))
            grid = week_grid(monday, agenda_view.week_slots(s, ctx.user, monday, zone, now))
        rows = []
        for sc in reversed(planning.visible(s, ctx.user)):  # the API's GET /schedules, newest first
            nxt = recurrence.occurrences(sc, now, now + timedelta(days=400), limit=1)
            count = station_count(s, Targets.model_validate(sc.targets), ctx.scope)
            rows.append(Row(sc, describe(sc, ctx.lang), nxt[0].start if nxt else None, count))
            s.expunge(sc)
    drafts = [r for r in rows if r.schedule.status == ScheduleStatus.DRAFT]
    return render(
        request,
        "schedules.html",
        ctx=ctx,
        rows=rows,
        drafts=drafts,
        week=grid,
        week_days=WEEK_DAYS,
        status_name=STATUS,
        agenda=plan,
        month=cal,
        short_days=month_view.SHORT_DAYS,
        verdicts=month_view.VERDICTS,
        now_local=now.astimezone(zone),
        view=view,
    )


# -- the editor ---------------------------------------------------------------------------------------
def _defaults(request: Request, media: str) -> dict[str, Any]:
    today = datetime.now(tz(request)).date()
    return {
        "title": "",
        "media": media,
        "target": "all",
        "communes": [],
        "priority": "normal",
        "mode": "days",
        "days": list(range(7)),
        "times": "06:00",
        "every_hours": "2",
        "minute": "0",
        "start_date": dmy(today),
        "until_date": "",
        "exdates": "",
        "rrule_raw": "",
        "override_reason": "",
        "schedule_id": "",
    }


def _from_schedule(sc: Schedule) -> dict[str, Any]:
    start = datetime.fromisoformat(sc.dtstart)
    parts = rrule_text.parse(sc.rrule)
    form: dict[str, Any] = {
        "title": sc.title,
        "media": sc.media[0] if sc.media else "",
        "priority": sc.priority,
        "target": "communes" if sc.targets.get("communes") else "all",
        "communes": sc.targets.get("communes", []),
        "start_date": dmy(start.date()),
        "until_date": dmy(datetime.fromisoformat(sc.until).date()) if sc.until else "",
        "exdates": ", ".join(
            sorted({datetime.fromisoformat(e).strftime("%d/%m/%Y") for e in sc.exdates or []})
        ),
        "override_reason": sc.override_reason or "",
        "schedule_id": str(sc.id),
        "rrule_raw": "",
        "days": parts.days or list(range(7)),
        "every_hours": str(parts.interval),
        "minute": str(parts.minutes[0] if parts.minutes else 0),
        "times": ", ".join(rrule_text.clock(t) for t in rrule_text.times_of_day(parts, start)),
    }
    form["mode"] = "hours" if parts.freq == "HOURLY" else "days"
    rebuilt = None
    with contextlib.suppress(ValueError):
        rebuilt = _rule_from(form)
    if rebuilt != sc.rrule or parts.count or parts.until:
        form["rrule_raw"] = sc.rrule  # not the builder's shape: keep it as written
    return form


def _rule_from(form: dict[str, Any]) -> str:
    if form.get("rrule_raw", "").strip():
        return str(form["rrule_raw"]).strip()
    days = [int(d) for d in form.get("days", []) if str(d).isdigit() and 0 <= int(d) <= 6]
    if form["mode"] == "hours":
        return rrule_text.build(
            mode="hours",
            days=days,
            every_hours=int(form["every_hours"] or 1),
            minute=int(form["minute"] or 0),
        )
    if not days:
        raise ValueError("no days")
    return rrule_text.build(mode="days", days=days, times=rrule_text.parse_times(str(form["times"])))


def _media(s: Session) -> list[Media]:
    rows = list(s.scalars(select(Media).order_by(Media.created_at.desc()).limit(50)))
    for m in rows:
        s.expunge(m)
    return rows


def _editor(
    request: Request,
    ctx: Ctx,
    form: dict[str, Any],
    *,
    status: int = 200,
    error: Any = None,
    check: dict[str, Any] | None = None,
) -> Response:
    with runtime(request).db.session() as s:
        media = _media(s)
        area_choices = communes(s, ctx.scope)
    return render(
        request,
        "schedule_edit.html",
        status=status,
        ctx=ctx,
        form=form,
        media=media,
        communes=area_choices,
        error=error,
        check=check,
        week_days=WEEK_DAYS,
    )


@router.get("/schedules/new", response_class=HTMLResponse)
def schedule_new(request: Request, media: str = "") -> Response:
    ctx = page_ctx(request, Action.SCHEDULE_EDIT)
    return _editor(request, ctx, _defaults(request, media))


@router.get("/schedules/{schedule_id}/edit", response_class=HTMLResponse)
def schedule_edit(request: Request, schedule_id: int) -> Response:
    ctx = page_ctx(request, Action.SCHEDULE_EDIT)
    with runtime(request).db.session() as s:
        sc = _visible(s, ctx, schedule_id)
        if sc is None or sc.status == ScheduleStatus.DELETED or sc.priority == "emergency":
            return render(
                request,
                "error.html",
                status=404,
                ctx=ctx,
                message=("Không tìm thấy lịch phát số {id}.", {"id": schedule_id}),
            )
        form = _from_schedule(sc)
    return _editor(request, ctx, form)


def _read_form(form: Any) -> dict[str, Any]:
    keys = (
        "title",
        "media",
        "target",
        "priority",
        "mode",
        "times",
        "every_hours",
        "minute",
        "start_date",
        "until_date",
        "exdates",
        "rrule_raw",
        "override_reason",
        "schedule_id",
    )
    values: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in keys}
    values["communes"] = [to_int(v) for v in form.getlist("communes")]
    values["days"] = [int(v) for v in form.getlist("days") if str(v).isdigit()]
    values["mode"] = values["mode"] if values["mode"] in ("days", "hours") else "days"
    return values


def _request_of(s: Session, ctx: Ctx, form: Any, values: dict[str, Any], zone: Any) -> schedules.ScheduleIn:
    """The form as the service's ScheduleIn (ValueError with a message key on bad input)."""
    try:
        rule = _rule_from(values)
    except ValueError as exc:
        raise FormError(
            "Giờ phát không hợp lệ. Hãy viết giờ:phút, cách nhau bởi dấu phẩy, ví dụ 05:30, 17:00; "
            "và chọn ít nhất một ngày trong tuần."
        ) from exc
    try:
        start_day = parse_dmy(values["start_date"]) if values["start_date"] else datetime.now(zone).date()
        until = (
            datetime.combine(parse_dmy(values["until_date"]), time(23, 59, 59))
            if values["until_date"]
            else None
        )
        skipped = [parse_dmy(d) for d in values["exdates"].replace(";", ",").split(",") if d.strip()]
    except ValueError as exc:
        raise FormError(
            "Ngày không hợp lệ. Hãy viết ngày theo dạng ngày/tháng/năm, ví dụ 02/09/2026."
        ) from exc
    dtstart = datetime.combine(start_day, time(0))
    exdates: list[datetime] = []
    if skipped:
        rec = recurrence.Recurrence.of(rule, dtstart, None, [], str(zone))
        for day in skipped:
            lo = datetime.combine(day, time(0), zone)
            exdates += [
                t.astimezone(zone).replace(tzinfo=None) for t in rec.between(lo, lo + timedelta(days=1))
            ]
    if not values["media"]:
        raise FormError("Hãy chọn một bản tin âm thanh.")
    try:
        targets = targets_from_form(s, ctx, form)
    except ValueError as exc:
        raise FormError("Hãy chọn nơi phát: tất cả hoặc một số xã.") from exc
    try:
        return schedules.ScheduleIn(
            title=values["title"] or "",
            media=[values["media"]],
            rrule=rule,
            dtstart=dtstart,
            until=until,
            exdates=exdates,
            targets=targets,
            priority=values["priority"]
            if values["priority"] == "priority"
            else "normal",  # emergency: its page
            timezone=str(zone),
            override_reason=values["override_reason"] or None,
        )
    except ValidationError as exc:
        fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        if "title" in fields:
            raise FormError("Hãy nhập tiêu đề bản tin.") from exc
        raise FormError("Dữ liệu gửi lên không hợp lệ.") from exc


class FormError(ValueError):
    pass


def _conflict_lines(found: list[dict[str, Any]], zone: Any) -> list[dict[str, Any]]:
    out = []
    for c in found[:20]:
        at = datetime.fromisoformat(c["at"]).astimezone(zone)
        out.append(
            {
                "at": at.strftime("%d/%m/%Y %H:%M"),
                "title": c["with"]["title"],
                "resolution": RESOLUTION.get(c["resolution"], c["resolution"]),
                "stations": len(c["stations"]),
            }
        )
    return out


@router.post("/schedules/save", response_class=HTMLResponse)
async def schedule_save(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.SCHEDULE_EDIT)
    zone = tz(request)
    values = _read_form(form)
    wants_save = str(form.get("action", "check")) == "save"
    schedule_id = to_int(values["schedule_id"])
    with rt.db.session() as s:
        try:
            req = _request_of(s, ctx, form, values, zone)
            if schedule_id is not None:
                old = _visible(s, ctx, schedule_id)
                if old is None or old.priority == "emergency":
                    raise Forbidden()
            # The same use case as the API: the right, the new and the old targets' area.
            saved = planning.save(s, ctx.user, req, schedule_id=schedule_id, limits=Limits.of(rt.settings))
        except FormError as exc:
            return _editor(request, ctx, values, status=422, error=(str(exc), {}))
        except PolicyViolation as exc:
            return _editor(
                request,
                ctx,
                values,
                status=422,
                error=user_error(exc, ctx.lang),
                check={"policy_blocked": True},
            )
        except UserError as exc:
            if exc.status == 403 and exc.key == "auth.forbidden":
                raise Forbidden() from exc
            return _editor(request, ctx, values, status=exc.status, error=user_error(exc, ctx.lang))
        sc = saved.schedule
        text = describe(sc, ctx.lang)
        upcoming = recurrence.occurrences(
            sc, datetime.now(UTC), datetime.now(UTC) + timedelta(days=400), limit=6
        )
        if wants_save:
            new_id, approved = sc.id, saved.approved
            s.commit()
        else:
            first = upcoming[0].start.astimezone(zone).date() if upcoming else datetime.now(zone).date()
            monday = first  # a rolling week from the first occurrence
            start = datetime.combine(monday, time(0), zone).astimezone(UTC)
            mine = [
                Slot(o.start.astimezone(zone), sc.title, "mine")
                for o in recurrence.occurrences(sc, start, start + timedelta(days=7), limit=400)
            ]
            check = {
                "text": text,
                "rrule": sc.rrule,
                "stations": len(saved.device_ids),
                "upcoming": [o.start.astimezone(zone).strftime("%d/%m/%Y %H:%M") for o in upcoming],
                "conflicts": _conflict_lines(saved.conflicts, zone),
                "policy": saved.policy,
                "approved": saved.approved,
            }
            s.rollback()  # a check changes nothing
            check["week"] = week_grid(monday, mine + _slots(s, ctx, monday, zone, skip=schedule_id))
            return _editor(request, ctx, values, check=check)
    ok = "schedule_saved" if approved else "schedule_draft"
    return redirect(f"/schedules?ok={ok}#schedule-{new_id}")


def _refused(request: Request, ctx: Ctx, exc: UserError) -> Response:
    """A schedule action the service refused: 403 is the panel's Forbidden page, the rest an error page."""
    if exc.status == 403:
        raise Forbidden() from exc
    return render(request, "error.html", status=exc.status, ctx=ctx, message=user_error(exc, ctx.lang))


@router.post("/schedules/{schedule_id}/approve", response_class=HTMLResponse)
async def schedule_approve(request: Request, schedule_id: int) -> Response:
    rt, _form, ctx = await authorized_form(request, Action.BROADCAST_APPROVE)
    try:
        with rt.db.session() as s:
            limits = Limits.of(rt.settings)
            planning.approve(s, ctx.user, schedule_id, limits=limits)  # checks the area too
            s.commit()
    except UserError as exc:
        return _refused(request, ctx, exc)
    return redirect("/schedules?ok=schedule_approved")


@router.post("/schedules/{schedule_id}/delete", response_class=HTMLResponse)
async def schedule_delete(request: Request, schedule_id: int) -> Response:
    rt, _form, ctx = await authorized_form(request, Action.SCHEDULE_EDIT)
    try:
        with rt.db.session() as s:
            planning.delete(s, ctx.user, schedule_id)  # another area's schedule: refused
            s.commit()
    except UserError as exc:
        return _refused(request, ctx, exc)
    return redirect("/schedules?ok=schedule_deleted")
