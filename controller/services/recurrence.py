"""Recurrence: RFC 5545 rules in local time, and the occurrences they give.

Occurrences are never stored: the rule is the truth and every desired-state build
expands it for the horizon. Each occurrence gets the item id
``s{schedule_id}@{UTC yyyymmddThhmmssZ}``, which is stable across rebuilds, edits and
controller restarts, so a station never plays the same occurrence twice. Used by the
schedule commands, the horizon, the policy checks, emergency repeats, LED programmes
and reports; it imports none of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, HOURLY, WEEKLY, rrule, rrulestr

from controller.core.config import DEFAULT_TIMEZONE
from controller.core.errors import UserError
from controller.db.models_schedules import Schedule

DEFAULT_TZ = DEFAULT_TIMEZONE  # a schedule saved without its own zone
# What a save checks (policy, conflicts): the coming year, at most this many occurrences.
CHECK_WINDOW = timedelta(days=366)
MAX_CHECKED = 2000
# A horn can not usefully play more often than hourly; finer rules would flood the horizon.
ALLOWED_FREQ = {"YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY"}
_UNTIL_UTC = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)
_FORBIDDEN = re.compile(r"(^|[\n;:])\s*(DTSTART|RDATE|EXRULE|TZID)", re.IGNORECASE)


@dataclass(frozen=True)
class Occurrence:
    start: datetime  # aware, UTC
    duration_s: float

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)


def item_id(schedule_id: int, start: datetime) -> str:
    return f"s{schedule_id}@{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def parse_item_id(value: str) -> tuple[int, datetime] | None:
    """The schedule and UTC instant an item id names (None for other items)."""
    m = re.fullmatch(r"s(\d+)@(\d{8}T\d{6})Z", value)
    if m is None:
        return None
    return int(m.group(1)), datetime.strptime(m.group(2), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:
        raise UserError(422, "schedule.bad_timezone", timezone=name) from None


def wall_time(dt: datetime, tz: ZoneInfo) -> datetime:
    """Naive local wall time (an aware input is converted into the zone first)."""
    return dt.astimezone(tz).replace(tzinfo=None) if dt.tzinfo else dt


def _attach(local: datetime, tz: ZoneInfo) -> datetime:
    return local.replace(tzinfo=tz).astimezone(UTC)


def parse_rule(text: str, dtstart_local: datetime, tz: ZoneInfo) -> rrule:
    """One RRULE (with or without the 'RRULE:' prefix) anchored at a naive local dtstart.

    An UTC UNTIL (…Z, as RFC 5545 wants with a TZID) becomes local wall time, so the rule
    expands in wall time and never drifts by the zone offset.
    """
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if _FORBIDDEN.search(body) or "\n" in body:
        raise UserError(422, "schedule.bad_rule", rule=text, error="DTSTART/RDATE/EXRULE/TZID")

    def _until(m: re.Match[str]) -> str:
        instant = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return "UNTIL=" + wall_time(instant, tz).strftime("%Y%m%dT%H%M%S")

    body = _UNTIL_UTC.sub(_until, body)
    freq = re.search(r"FREQ=([A-Z]+)", body.upper())
    if freq is None:
        raise UserError(422, "schedule.bad_rule", rule=text, error="FREQ")
    if freq.group(1) not in ALLOWED_FREQ:
        raise UserError(422, "schedule.too_frequent", rule=text)
    try:
        parsed = rrulestr(body, dtstart=dtstart_local)
    except (ValueError, TypeError) as exc:
        raise UserError(422, "schedule.bad_rule", rule=text, error=str(exc)) from None
    if not isinstance(parsed, rrule):
        raise UserError(422, "schedule.bad_rule", rule=text, error="one RRULE")
    return parsed


_PERIOD = {DAILY: timedelta(days=1), WEEKLY: timedelta(weeks=1), HOURLY: timedelta(hours=1)}


def _fast_forward(rule: rrule, lo: datetime) -> rrule:
    """The same rule restarted a whole number of periods closer to `lo`.

    dateutil walks every occurrence from DTSTART, so a daily rule started a year ago costs
    hundreds of steps per expansion. Without COUNT or BYSETPOS, and for daily, weekly or
    hourly rules, moving DTSTART by whole INTERVALs keeps every later occurrence (the
    defaults DTSTART implies — time of day, weekday — are unchanged by such a move).
    """
    step = _PERIOD.get(rule._freq)  # dateutil keeps its parts private
    start = rule._dtstart
    if step is None or rule._count is not None or rule._bysetpos or start is None:
        return rule
    step *= rule._interval
    periods = (lo - start) // step - 1
    if periods < 2:
        return rule
    return rule.replace(dtstart=start + periods * step)


@dataclass(frozen=True)
class Recurrence:
    """A schedule's timing, ready to expand."""

    rule: rrule
    tz: ZoneInfo
    until_local: datetime | None
    exdates_local: frozenset[datetime]

    @classmethod
    def of(cls, rule: str, dtstart: str | datetime, until: str | datetime | None,
           exdates: list[str] | list[datetime], timezone: str) -> Recurrence:
        tz = _zone(timezone)
        start = wall_time(datetime.fromisoformat(dtstart) if isinstance(dtstart, str) else dtstart, tz)
        end = None
        if until is not None:
            end = wall_time(datetime.fromisoformat(until) if isinstance(until, str) else until, tz)
        ex = frozenset(wall_time(datetime.fromisoformat(e) if isinstance(e, str) else e, tz) for e in exdates)
        return cls(parse_rule(rule, start, tz), tz, end, ex)

    @classmethod
    def of_schedule(cls, sc: Schedule) -> Recurrence:
        return cls.of(sc.rrule, sc.dtstart, sc.until, sc.exdates or [], sc.timezone)

    def between(self, start: datetime, end: datetime, limit: int | None = None) -> list[datetime]:
        """UTC instants in [start, end] (both aware), in order."""
        lo = wall_time(start, self.tz) - timedelta(days=1)  # slack for offset changes; filtered below
        hi = wall_time(end, self.tz) + timedelta(days=1)
        if self.until_local is not None:
            hi = min(hi, self.until_local)
        out: list[datetime] = []
        if hi < lo:
            return out
        for local in _fast_forward(self.rule, lo).xafter(lo, inc=True):
            if local > hi:
                break
            if local < lo or local in self.exdates_local:
                continue
            instant = _attach(local, self.tz)
            if start <= instant <= end:
                out.append(instant)
                if limit is not None and len(out) >= limit:
                    break
        return out


def occurrences(sc: Schedule, start: datetime, end: datetime, limit: int | None = None) -> list[Occurrence]:
    return [Occurrence(t, sc.duration_s) for t in Recurrence.of_schedule(sc).between(start, end, limit)]
