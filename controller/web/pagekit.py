"""Small helpers the feature pages (routes_*.py) share: form parsing, targets, local time, charts.

Kept apart from routes.py so a feature page needs only this and panel.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.core.i18n import t
from controller.core.permissions import Action, all_in_scope
from controller.services.targets import Targets
from controller.web import target_picker
from controller.web.panel import Ctx, Forbidden, check_csrf, current, runtime

Message = tuple[str, dict[str, Any]]  # (Vietnamese msgid, params): translated by the template


def to_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def authorized_form(request: Request, action: Action) -> tuple[Any, Any, Ctx]:
    """Every feature form post: the caller, then their CSRF token, then the permission."""
    rt = runtime(request)
    form = await request.form()
    with rt.db.session() as s:
        ctx = current(request, s)
    await check_csrf(ctx, form)
    ctx.require(action)
    return rt, form, ctx


def page_ctx(request: Request, action: Action | None = None) -> Ctx:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
    if action is not None:
        ctx.require(action)
    return ctx


def user_error(exc: UserError, lang: str) -> Message:
    """A service's refusal in the page's language (already translated: no msgid lookup)."""
    return (t(exc.key, lang, **exc.params), {})


def communes(s: Session, scope: set[int] | None) -> list[tuple[int, str]]:
    from controller.web import queries

    return queries.communes(s, scope)


def targets_from_form(s: Session, ctx: Ctx, form: Any) -> Targets:
    """'all' (= all of the user's area) or chosen communes; outside the area is a 403."""
    mode = str(form.get("target", "all"))
    if mode == "picked":  # by name: communes, groups, stations (target_picker.py); outside: 403
        picks = [str(v) for v in form.getlist("pick")]
        return target_picker.to_targets(target_picker.picked(s, ctx, picks))
    if mode == "communes":
        ids = [i for i in (to_int(v) for v in form.getlist("communes")) if i is not None]
        if not ids:
            raise ValueError("no communes")
        if not all_in_scope(s, ctx.user, ids):
            raise Forbidden()
        return Targets(communes=ids)
    if ctx.scope is None:
        return Targets(all=True)
    if not ctx.scope:
        raise ValueError("no area")
    return Targets(communes=sorted(ctx.scope))


def tz(request: Request) -> ZoneInfo:
    return ZoneInfo(runtime(request).settings.timezone)


def parse_local(value: str, zone: ZoneInfo) -> datetime | None:
    """A local day and time as typed (dd/mm/yyyy HH:MM, see `parse_dmy_hm`) as an aware UTC
    instant; None if empty. ValueError when it is not a real day and time."""
    value = value.strip()
    if not value:
        return None
    return parse_dmy_hm(value).replace(tzinfo=zone).astimezone(UTC)


# The panel's own date and time fields (issue 20, templates/_fields.html): text inputs, not
# <input type="date">, whose look follows the browser's language (mm/dd/yyyy, AM/PM in English).
BAD_DATE = "Ngày không hợp lệ. Hãy viết ngày theo dạng ngày/tháng/năm, ví dụ 02/09/2026."
BAD_DATETIME = "Thời điểm không hợp lệ. Hãy viết ngày/tháng/năm giờ:phút (24 giờ), ví dụ 02/09/2026 07:30."


def parse_dmy_hm(value: str) -> datetime:
    """dd/mm/yyyy HH:MM[:SS] (24-hour, as people write it; ISO yyyy-mm-ddTHH:MM still read)
    as a naive local datetime. ValueError otherwise."""
    value = value.strip()
    if "/" not in value:
        return datetime.fromisoformat(value)
    day_part, _sep, clock = value.replace("T", " ").partition(" ")
    parts = clock.strip().split(":")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() and len(p) <= 2 for p in parts):
        raise ValueError(value)
    hour, minute, second = (int(p) for p in (*parts, "0")[:3])
    return datetime.combine(parse_dmy(day_part), time(hour, minute, second))


def parse_dmy(value: str) -> date:
    """dd/mm/yyyy (as people write it) or yyyy-mm-dd (links and older forms). ValueError otherwise."""
    value = value.strip()
    if "/" in value:
        parts = value.split("/")
        if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(parts[2]) != 4:
            raise ValueError(value)
        d, m, y = (int(x) for x in parts)
        return date(y, m, d)
    return date.fromisoformat(value)


def dmy(value: date | datetime | None) -> str:
    """A day as the panel writes it (dd/mm/yyyy); empty for None."""
    return value.strftime("%d/%m/%Y") if value else ""


# -- week grid --------------------------------------------------------------------------------------
@dataclass
class Slot:
    at: datetime  # local
    title: str
    kind: str  # "mine" (the one being edited), "other", "draft"
    href: str | None = None
    move: str | None = None  # a one-off bulletin not started yet: its "Đổi giờ" form (drag and drop)


@dataclass
class Week:
    monday: date
    days: list[date]
    hours: list[int]
    cells: dict[tuple[int, int], list[Slot]]  # (day index, hour) -> slots

    @property
    def prev(self) -> str:
        return (self.monday - timedelta(days=7)).isoformat()

    @property
    def next(self) -> str:
        return (self.monday + timedelta(days=7)).isoformat()


def monday_of(d: date) -> date:
    return d - timedelta(days=d.weekday())


def week_grid(monday: date, slots: list[Slot]) -> Week:
    """7 days x the hours that matter (05-21 always, plus any hour with something in it)."""
    days = [monday + timedelta(days=i) for i in range(7)]
    cells: dict[tuple[int, int], list[Slot]] = {}
    for slot in sorted(slots, key=lambda x: x.at):
        idx = (slot.at.date() - monday).days
        if 0 <= idx < 7:
            cells.setdefault((idx, slot.at.hour), []).append(slot)
    hours = sorted(set(range(5, 22)) | {h for _d, h in cells})
    return Week(monday, days, hours, cells)


# -- an inline SVG line chart (no chart library: a few points, drawn on the server) ---------------
@dataclass
class Chart:
    title: str
    unit: str
    width: int
    height: int
    path: str
    y_min: float
    y_max: float
    t_first: datetime | None
    t_last: datetime | None
    last: float | None
    points: int


def line_chart(
    title: str, unit: str, series: list[tuple[datetime, float]], *, width: int = 320, height: int = 90
) -> Chart:
    pts = [(ts, float(v)) for ts, v in series if v is not None]
    if len(pts) > 300:  # a phone-sized chart: every k-th point is plenty
        k = -(-len(pts) // 300)
        pts = pts[::k] + ([pts[-1]] if (len(pts) - 1) % k else [])
    if not pts:
        return Chart(title, unit, width, height, "", 0, 0, None, None, None, 0)
    t0, t1 = pts[0][0].timestamp(), pts[-1][0].timestamp()
    lo, hi = min(v for _t, v in pts), max(v for _t, v in pts)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    span = max(t1 - t0, 1.0)
    pad = 4
    coords = []
    for ts, v in pts:
        x = pad + (ts.timestamp() - t0) / span * (width - 2 * pad)
        y = height - pad - (v - lo) / (hi - lo) * (height - 2 * pad)
        coords.append(f"{x:.1f},{y:.1f}")
    path = "M" + " L".join(coords)
    return Chart(title, unit, width, height, path, lo, hi, pts[0][0], pts[-1][0], pts[-1][1], len(pts))
