"""Play-log reports: CSV and XLSX exports, monthly minutes per commune, missed/failed counts.

Times are shown to people in the zone of `Filters.tz` (Settings.timezone, which the caller
passes in) as dd/mm/yyyy HH:MM:SS. A schedule
occurrence is recognised by its item id (`s{id}@…`), a one-off broadcast by its
broadcast id, so both land in the same report.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, and_, case, cast, func, literal, select, type_coerce
from sqlalchemy.orm import Session

from controller.core.config import DEFAULT_TIMEZONE
from controller.core.i18n import has_message, t
from controller.db.models import Area, Broadcast, Device, PlayLog
from controller.db.models_schedules import Schedule
from controller.db.statuses import AIRED_PLAY, PlayStatus
from controller.db.types import UTCDateTime
from controller.i18n import formats
from controller.services.recurrence import parse_item_id

# The zone a Filters made without one reads local days and months in (the default of
# Settings.timezone); the routes pass the configured one.
TZ = ZoneInfo(DEFAULT_TIMEZONE)
MONTHS_WITHOUT_LOOKUP = 24  # wider ranges are narrowed to the data first (one CASE arm per month)
# The export's words are message keys of the one catalogue (controller/i18n/), like the API's.
# The commune's official code (docs/areas.md) stands next to its name.
COLUMNS = ["started", "finished", "commune", "commune_code", "station", "station_uid", "bulletin", "kind",
           "item_id", "status", "minutes", "start_error", "reason"]  # report.column.<name>
MONTHLY_COLUMNS = ["report.column.commune", "report.column.commune_code", "report.monthly.month",
                   "report.monthly.minutes", "report.monthly.played", "report.monthly.missed",
                   "report.monthly.failed", "report.monthly.interrupted"]


# A spreadsheet reads a text cell starting with one of these as a formula (or, for tab and CR,
# shifts it into another cell): a station's `reason` "=HYPERLINK(...)" would run in the
# operator's Excel. OWASP's CSV-injection advice: such text is written with a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` as every export (CSV and XLSX) writes it: text that a spreadsheet would take
    for a formula gets a leading apostrophe; numbers, dates and None are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _safe_row(row: list[Any]) -> list[Any]:
    return [safe_cell(v) for v in row]


@dataclass(frozen=True)
class Filters:
    start: datetime | None = None  # aware
    end: datetime | None = None
    commune_id: int | None = None
    # The caller's communes (controller/core/permissions.py communes_in_scope); None: every commune.
    scope: frozenset[int] | None = None
    # The zone of local months and of the times written in exports (Settings.timezone).
    tz: ZoneInfo = TZ

    def conditions(self) -> list[Any]:
        """The area part of the filter: the chosen commune, and never outside the caller's area."""
        cond: list[Any] = []
        if self.commune_id is not None:
            cond.append(Device.commune_id == self.commune_id)
        if self.scope is not None:
            cond.append(Device.commune_id.in_(self.scope or {-1}))
        return cond


def _when(r: PlayLog) -> datetime | None:
    return r.started_at or _item_instant(r.item_id) or r.updated_at


def _item_instant(item_id: str) -> datetime | None:
    parsed = parse_item_id(item_id)
    return parsed[1] if parsed else None


def _fmt(dt: datetime | None, tz: ZoneInfo, lang: str) -> str:
    return formats.date_time(dt, tz, seconds=True, lang=lang, empty="")


def rows(session: Session, f: Filters, lang: str = "vi") -> list[list[Any]]:
    q = (select(PlayLog, Device, Area).join(Device, Device.id == PlayLog.device_id)
         .join(Area, Area.id == Device.commune_id).where(*f.conditions()).order_by(PlayLog.id))
    found = session.execute(q).all()
    bc_ids = {r.broadcast_id for r, _, _ in found if r.broadcast_id}
    titles_b = dict(session.execute(
        select(Broadcast.id, Broadcast.title).where(Broadcast.id.in_(bc_ids))).all())
    sc_ids = {p[0] for r, _, _ in found if (p := parse_item_id(r.item_id))}
    titles_s = dict(session.execute(select(Schedule.id, Schedule.title).where(Schedule.id.in_(sc_ids))).all())
    out: list[list[Any]] = []
    for r, dev, area in found:
        when = _when(r)
        if when is None or (f.start and when < f.start) or (f.end and when >= f.end):
            continue
        parsed = parse_item_id(r.item_id)
        if parsed:
            kind, title = t("report.kind.schedule", lang), titles_s.get(parsed[0], "")
        else:
            kind, title = t("report.kind.broadcast", lang), titles_b.get(r.broadcast_id or -1, "")
        minutes = ""
        if r.started_at and r.finished_at:
            minutes = round((r.finished_at - r.started_at).total_seconds() / 60, 2)
        status = t(f"report.play.{r.status}", lang) if has_message(f"report.play.{r.status}") else r.status
        out.append([_fmt(r.started_at or when, f.tz, lang), _fmt(r.finished_at, f.tz, lang), area.name,
                    area.code or "", dev.name, dev.uid, title, kind, r.item_id, status, minutes,
                    r.start_error_ms, r.reason or ""])
    return out


def header(lang: str) -> list[str]:
    return [t(f"report.column.{name}", lang) for name in COLUMNS]


def to_csv(session: Session, f: Filters, lang: str = "vi") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(_safe_row(header(lang)))
    w.writerows(_safe_row(["" if v is None else v for v in row]) for row in rows(session, f, lang))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel opens Vietnamese correctly


def monthly(session: Session, f: Filters) -> list[dict[str, Any]]:
    """Per commune and local month: minutes really broadcast, plays, missed, failed, interrupted.

    One GROUP BY in the database (the play log has a row per station and bulletin: the
    biggest table the panel reads). A play's month is the local month of its instant
    (`_when`), found by comparing that UTC instant with the UTC instants at which the local
    months begin: the same SQL is exact on SQLite (which has no time zones) and PostgreSQL,
    whatever the server's or the session's time zone.
    """
    dialect = session.get_bind().dialect.name
    when = _when_sql(dialect)
    cond = [when.is_not(None), *f.conditions()]
    if f.start is not None:
        cond.append(when >= f.start)
    if f.end is not None:
        cond.append(when < f.end)
    lo, hi = f.start, f.end
    if lo is None or hi is None or hi - lo > timedelta(days=MONTHS_WITHOUT_LOOKUP * 31):
        # An open or very wide range (the API): the data says which months there are.
        first, last = session.execute(
            select(func.min(when), func.max(when)).select_from(PlayLog)
            .join(Device, Device.id == PlayLog.device_id).where(*cond)
        ).one()
        if first is None:
            return []
        lo, hi = max(lo or first, first), min(hi or last, last) + timedelta(seconds=1)
    starts = _month_starts(lo, hi, f.tz)
    # A month is its index in `starts`; the first arm also takes what lies before the second
    # month (the range filter bounds it below).
    month: Any = (case(*[(when < nxt, i) for i, nxt in enumerate(starts[1:])], else_=len(starts) - 1)
                  if len(starts) > 1 else literal(0))  # fmt: skip
    span = _seconds_sql(dialect, PlayLog.finished_at, PlayLog.started_at)
    seconds = case((and_(PlayLog.status.in_(AIRED_PLAY), PlayLog.started_at.is_not(None),
                         PlayLog.finished_at.is_not(None)), span), else_=0.0)
    # Grouped one level up: with bound parameters in it the same CASE would be two different
    # expressions to PostgreSQL in SELECT and in GROUP BY.
    per_row = (select(Device.commune_id.label("commune_id"), month.label("month"), seconds.label("secs"),
                      PlayLog.status.label("status"))
               .select_from(PlayLog).join(Device, Device.id == PlayLog.device_id).where(*cond)
               .subquery())  # fmt: skip
    c = per_row.c

    def count(status: str) -> Any:
        return func.sum(case((c.status == status, 1), else_=0))

    found = session.execute(
        select(c.commune_id, c.month, func.sum(c.secs), count(PlayStatus.PLAYED), count(PlayStatus.MISSED),
               count(PlayStatus.FAILED), count(PlayStatus.INTERRUPTED))
        .group_by(c.commune_id, c.month)
    ).all()
    named = session.execute(select(Area.id, Area.name, Area.code).where(Area.id.in_({r[0] for r in found})))
    names, codes = {}, {}
    for area_id, name, code in named:
        names[area_id], codes[area_id] = name, code
    out = []
    for commune_id, i, secs, played, missed, failed, interrupted in found:
        if commune_id not in names:
            continue  # as the inner join with the commune always did
        local = starts[int(i)].astimezone(f.tz)
        out.append({"commune_id": commune_id, "commune": names[commune_id], "commune_code": codes[commune_id],
                    "month": formats.month(local, f.tz),
                    "minutes": round(float(secs or 0) / 60, 2), "played": int(played or 0),
                    "missed": int(missed or 0), "failed": int(failed or 0),
                    "interrupted": int(interrupted or 0), "_sort": (local.year, local.month)})  # fmt: skip
    out.sort(key=lambda a: (a["commune"], a["_sort"]))
    for a in out:
        del a["_sort"]
    return out


def _when_sql(dialect: str) -> Any:
    """`_when` in SQL: started, else the instant a schedule item id names, else last update."""
    item = PlayLog.item_id
    stamp = func.substr(item, func.length(item) - 15, 15)  # "YYYYMMDDTHHMMSS" before the final "Z"
    p = [func.substr(stamp, a, n) for a, n in ((1, 4), (5, 2), (7, 2), (10, 2), (12, 2), (14, 2))]
    text = p[0] + "-" + p[1] + "-" + p[2] + " " + p[3] + ":" + p[4] + ":" + p[5]
    # The pattern `parse_item_id` fullmatches (on SQLite, SQLAlchemy's REGEXP is Python's re).
    is_item = item.regexp_match(r"^s[0-9]+@[0-9]{8}T[0-9]{6}Z\Z")
    if dialect == "postgresql":
        instant: Any = cast(text + "+00", DateTime(timezone=True))
    else:  # SQLite keeps naive UTC as text in exactly this shape (controller/db/types.py)
        instant = text + ".000000"
    return type_coerce(func.coalesce(PlayLog.started_at, case((is_item, instant)), PlayLog.updated_at),
                       UTCDateTime())


def _seconds_sql(dialect: str, later: Any, earlier: Any) -> Any:
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _month_starts(lo: datetime, hi: datetime, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the local months (in `tz`) overlapping [lo, hi) begin (at least one)."""
    first = lo.astimezone(tz)
    y, m = first.year, first.month
    out: list[datetime] = []
    while True:
        start = datetime(y, m, 1, tzinfo=tz).astimezone(UTC)
        if out and start >= hi:
            return out
        out.append(start)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def to_xlsx(session: Session, f: Filters, lang: str = "vi") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = t("report.sheet.play_log", lang)
    ws.append(_safe_row(header(lang)))
    for row in rows(session, f, lang):
        ws.append(_safe_row(row))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    summary = wb.create_sheet(t("report.sheet.monthly", lang))
    summary.append([t(key, lang) for key in MONTHLY_COLUMNS])
    for a in monthly(session, f):
        summary.append(_safe_row([a["commune"], a["commune_code"] or "", a["month"], a["minutes"],
                                  a["played"], a["missed"], a["failed"], a["interrupted"]]))
    for cell in summary[1]:
        cell.font = Font(bold=True)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
