"""The schedules page's agenda ("Hôm nay / Sắp tới"): entries from `usecases.agenda` put in
words for a person, in the page's language.

Why its own module: the phone's default schedule view must say, for each play, the local
time (24-hour), what, where, and for the past ones what happened — in sentences, never a
status value — and routes_schedules.py stays about the week view and the editor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Area, User
from controller.db.statuses import PlayStatus
from controller.schemas.targets import Targets
from controller.services.targets import commune_ids
from controller.usecases import agenda
from controller.web.pagekit import Slot

UPCOMING_DAYS = 7  # today and the six days after it
MAX_UPCOMING = 40
# what happened, per play-log status, as "… at n stations" (order: the good news first)
OUTCOME = {
    PlayStatus.PLAYED: "Đã phát ở {n} trạm",
    PlayStatus.PLAYING: "Đang phát ở {n} trạm",
    PlayStatus.INTERRUPTED: "Bị ngắt ở {n} trạm",
    PlayStatus.MISSED: "Bị lỡ ở {n} trạm",
    PlayStatus.FAILED: "Lỗi phát ở {n} trạm",
}
NO_REPORT = "Chưa có trạm nào báo đã phát."
CANCELLED = "Đã huỷ, không phát."
COMING = "Sắp phát"
AWAITING = "Chờ duyệt: chỉ phát khi được duyệt."
ALL_STATIONS = "Tất cả các trạm"
OTHER_COMMUNES = "{names} và {n} xã khác"
CHOSEN_STATIONS = "{n} trạm được chọn"
TAGGED = "Các trạm có nhãn {tags}"
SCHEDULED = "Theo lịch phát"
ONE_OFF = "Bản tin phát một lần"
PRIORITY = {"priority": "Ưu tiên", "emergency": "Khẩn cấp"}


@dataclass
class Line:
    """One agenda row as the template shows it (all text already in the page's language)."""

    at: datetime  # local
    clock: str  # HH:MM, 24-hour
    day: str  # dd/mm/yyyy
    title: str
    kind: str
    where: str
    outcome: str
    past: bool
    href: str | None
    move_href: str | None = None  # a one-off bulletin not started yet: the calendar's "Đổi giờ" form


@dataclass
class Agenda:
    today: date
    today_lines: list[Line]
    upcoming: list[Line]  # after today, grouped by day in the template


def build(s: Session, user: User, zone: ZoneInfo, now: datetime, _: Callable[..., str]) -> Agenda:
    today = now.astimezone(zone).date()
    start = datetime.combine(today, time(0), zone)
    end = start + timedelta(days=UPCOMING_DAYS)
    names: dict[int, str] = {}
    lines = [_line(s, e, zone, now, _, names) for e in agenda.entries(s, user, start, end, now=now)]
    return Agenda(today, [ln for ln in lines if ln.at.date() == today],
                  [ln for ln in lines if ln.at.date() > today][:MAX_UPCOMING])  # fmt: skip


def lines(s: Session, found: list[agenda.Entry], zone: ZoneInfo, now: datetime,
          _: Callable[..., str]) -> list[Line]:  # fmt: skip
    """Entries in words (the month view's chosen day)."""
    names: dict[int, str] = {}
    return [_line(s, e, zone, now, _, names) for e in found]


def week_slots(s: Session, user: User, first: date, zone: ZoneInfo, now: datetime) -> list[Slot]:
    """The week grid's slots from the same entries: schedules and one-off broadcasts alike."""
    start = datetime.combine(first, time(0), zone)
    return [
        Slot(e.at.astimezone(zone), e.title, "draft" if e.awaiting_approval else "other", _href(e),
             move_href(e, e.at <= now))
        for e in agenda.entries(s, user, start, start + timedelta(days=7), now=now)
    ]


def _href(e: agenda.Entry) -> str:
    return f"/schedules/{e.ref_id}/edit" if e.source == "schedule" else f"/playlog?broadcast_id={e.ref_id}"


def _line(s: Session, e: agenda.Entry, zone: ZoneInfo, now: datetime, _: Callable[..., str],
          names: dict[int, str]) -> Line:  # fmt: skip
    local = e.at.astimezone(zone)
    past = e.at <= now
    kind = _(SCHEDULED) if e.source == "schedule" else _(ONE_OFF)
    if e.priority in PRIORITY:
        kind += " · " + _(PRIORITY[e.priority])
    return Line(local, local.strftime("%H:%M"), local.strftime("%d/%m/%Y"), e.title, kind,
                where(s, e.targets, _, names), outcome(e, past, _), past, _href(e),
                move_href(e, past))  # fmt: skip


def movable(e: agenda.Entry, past: bool) -> bool:
    """A one-off bulletin not started yet, not an emergency nor cancelled (usecases.broadcasts
    .reschedule says the same, with its reasons, to whoever tries anyway)."""
    return e.source == "broadcast" and not past and not e.emergency and not e.cancelled


def move_href(e: agenda.Entry, past: bool) -> str | None:
    return f"/schedules/broadcasts/{e.ref_id}/move" if movable(e, past) else None


def outcome(e: agenda.Entry, past: bool, _: Callable[..., str]) -> str:
    """What happened (past) or will happen, as a sentence."""
    parts = [_(text, n=e.outcome[st]) for st, text in OUTCOME.items() if e.outcome.get(st)]
    if e.cancelled:  # a stopped emergency played (interrupted) before it was cancelled
        return "; ".join(parts) + "." if parts else _(CANCELLED)
    if e.awaiting_approval:
        return _(AWAITING)
    if not past:
        return _(COMING)
    return "; ".join(parts) + "." if parts else _(NO_REPORT)


def where(s: Session, raw: dict[str, object], _: Callable[..., str], names: dict[int, str]) -> str:
    """The targets in words: all stations, the communes by name, chosen stations, tags."""
    try:
        targets = Targets.model_validate(raw)
    except ValueError:
        return _(ALL_STATIONS)
    if targets.all:
        return _(ALL_STATIONS)
    parts: list[str] = []
    ids = sorted(commune_ids(s, targets))
    missing = [i for i in ids if i not in names]
    if missing:
        names.update({i: n for i, n in s.execute(select(Area.id, Area.name).where(Area.id.in_(missing)))})
    communes = sorted(names.get(i, "") for i in ids)
    if len(communes) > 3:
        parts.append(_(OTHER_COMMUNES, names=", ".join(communes[:3]), n=len(communes) - 3))
    elif communes:
        parts.append(", ".join(communes))
    if targets.devices:
        parts.append(_(CHOSEN_STATIONS, n=len(targets.devices)))
    if targets.tags:
        parts.append(_(TAGGED, tags=", ".join(targets.tags)))
    return "; ".join(parts) or _(ALL_STATIONS)
