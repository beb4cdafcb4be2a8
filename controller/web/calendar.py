"""The schedules page's month view ("Tháng"): what will play where, day by day, and for the days
already past what the play log says happened.

Why its own module: the grid needs the same plays as the agenda (`usecases.agenda.entries`,
which holds the area rules: a commune's operator never sees another commune's plays) over a
whole month, then a verdict per play and a count per day that fits a 390 px phone; the day a
person taps is listed in full with the agenda's words (`controller/web/agenda.py`).

The week starts on Monday (Thứ Hai), as Vietnamese calendars do; days are local days of the
controller's time zone; the page writes them dd/mm/yyyy itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from controller.db.models import User
from controller.db.statuses import PlayStatus
from controller.usecases import agenda
from controller.web import agenda as agenda_view
from controller.web.pagekit import monday_of, parse_dmy

# An hourly schedule over the six weeks a month grid shows is 1,008 plays.
MAX_PER_SCHEDULE = 1100
SHOWN_PER_DAY = 3  # titles written in a day's cell on a wide screen (a phone shows the count)
FIRST_YEAR, LAST_YEAR = 2000, 2100  # ?month= outside this: the current month
SHORT_DAYS = ("T2", "T3", "T4", "T5", "T6", "T7", "CN")
# What happened to one play, a verdict per play (past days); its words for the legend and the
# cells' labels. Order: how a day's marks are shown.
VERDICTS = {
    "played": "Đã phát",
    "interrupted": "Bị ngắt",
    "missed": "Bị lỡ hoặc lỗi",
    "unknown": "Chưa có báo cáo",
    "cancelled": "Đã huỷ",
    "coming": "Sắp phát",
    "draft": "Chờ duyệt",
}
MONTH_TITLE = "Tháng {m}"
PLAYS = "{n} lượt phát"
MORE = "và {n} lượt khác"
NOTHING = "Không có lượt phát nào"


@dataclass
class Cell:
    """One day of the grid."""

    day: date
    in_month: bool
    today: bool
    past: bool  # before today
    selected: bool
    count: int
    marks: list[tuple[str, int]]  # (verdict, plays), VERDICTS order, only the non-zero ones
    first: list[tuple[str, str, str | None]]  # (HH:MM, title, move form or None): the first plays
    href: str

    @property
    def more(self) -> int:
        return self.count - len(self.first)


@dataclass
class Month:
    first: date  # the 1st
    weeks: list[list[Cell]]
    today: date
    selected: date | None
    lines: list[agenda_view.Line] = field(default_factory=list)  # the selected day's plays

    @property
    def label(self) -> str:
        return self.first.strftime("%m/%Y")

    @property
    def prev(self) -> str:
        return (self.first - timedelta(days=1)).strftime("%Y-%m")

    @property
    def next(self) -> str:
        return (self.first + timedelta(days=32)).replace(day=1).strftime("%Y-%m")

    @property
    def this(self) -> str:
        return self.first.strftime("%Y-%m")


def month_param(month: str, day: date | None, today: date) -> date:
    """The 1st of the month asked for (?month=yyyy-mm), else of the day asked for, else today's."""
    try:
        first = date.fromisoformat(f"{month.strip()}-01")
        if FIRST_YEAR <= first.year <= LAST_YEAR:
            return first
    except ValueError:
        pass
    return (day or today).replace(day=1)


def day_param(value: str) -> date | None:
    """?day=yyyy-mm-dd (the cells' links) or dd/mm/yyyy; None when absent or not a day."""
    try:
        found = parse_dmy(value) if value.strip() else None
    except ValueError:
        return None
    return found if found and FIRST_YEAR <= found.year <= LAST_YEAR else None


def verdict(e: agenda.Entry, past: bool) -> str:
    """One play in one word of VERDICTS: for a past play from its play log on the caller's
    stations (a single missed or failed station marks the play, so nobody misses it)."""
    o = e.outcome
    if not past:
        return "draft" if e.awaiting_approval else "coming"
    if o[PlayStatus.MISSED] or o[PlayStatus.FAILED]:
        return "missed"
    if o[PlayStatus.INTERRUPTED]:
        return "interrupted"
    if o[PlayStatus.PLAYED] or o[PlayStatus.PLAYING]:
        return "played"
    return "cancelled" if e.cancelled else "unknown"


def href(day: date) -> str:
    return f"/schedules?view=month&month={day:%Y-%m}&day={day.isoformat()}#day"


def build(s: Session, user: User, zone: ZoneInfo, now: datetime, first: date, selected: date | None,
          _: Callable[..., str]) -> Month:  # fmt: skip
    """The month of `first` as weeks Monday to Sunday (the days of the months around it that
    fill the first and last week too), and the plays of `selected` (this month: today by
    default) in words."""
    today = now.astimezone(zone).date()
    start_day = monday_of(first)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    end_day = monday_of(last) + timedelta(days=7)
    start = datetime.combine(start_day, time(0), zone)
    end = datetime.combine(end_day, time(0), zone)
    found = agenda.entries(s, user, start, end, now=now, per_schedule=MAX_PER_SCHEDULE, history=True)
    by_day: dict[date, list[agenda.Entry]] = {}
    for e in found:
        by_day.setdefault(e.at.astimezone(zone).date(), []).append(e)
    if selected is None and (today.year, today.month) == (first.year, first.month):
        selected = today  # this month opens on today's list
    if selected is not None and not start_day <= selected < end_day:
        selected = None
    weeks: list[list[Cell]] = []
    day = start_day
    while day < end_day:
        week = []
        for _i in range(7):
            plays = by_day.get(day, [])
            tally = Counter(verdict(e, e.at <= now) for e in plays)
            week.append(Cell(
                day, day.month == first.month, day == today, day < today, day == selected, len(plays),
                [(v, tally[v]) for v in VERDICTS if tally[v]],
                [(e.at.astimezone(zone).strftime("%H:%M"), e.title, agenda_view.move_href(e, e.at <= now))
                 for e in plays[:SHOWN_PER_DAY]],
                href(day),
            ))  # fmt: skip
            day += timedelta(days=1)
        weeks.append(week)
    month = Month(first, weeks, today, selected)
    if selected is not None:
        month.lines = agenda_view.lines(s, by_day.get(selected, []), zone, now, _)
    return month
