"""Recurring schedules: RFC 5545 rules in local time, expanded into each station's horizon.

Occurrences are never stored: the rule is the truth and every desired-state build
expands it for the horizon. Each occurrence gets the item id
``s{schedule_id}@{UTC yyyymmddThhmmssZ}``, which is stable across rebuilds, edits and
controller restarts, so a station never plays the same occurrence twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, HOURLY, WEEKLY, rrule, rrulestr
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.config import DEFAULT_TIMEZONE
from controller.core.errors import NotFound, UserError
from controller.db.models import Area, Broadcast, Delivery, Device, Media, User, utcnow
from controller.db.models_schedules import Schedule
from controller.schemas.schedules import ScheduleIn
from controller.services import approval, audit, dispatch, policy
from controller.services.schedule_limits import Limits, check_desired_size, check_rule, check_rule_text
from controller.services.targets import Targets, resolve
from protocol.messages import MediaRef, Priority, ScheduleItem

DEFAULT_TZ = DEFAULT_TIMEZONE  # a schedule saved without its own zone
# Occurrences that ended longer ago than this are dropped from the horizon.
KEEP_PAST = timedelta(minutes=10)
# What a save checks (policy, conflicts): the coming year, at most this many occurrences.
CHECK_WINDOW = timedelta(days=366)
MAX_CHECKED = 2000
CONFLICT_WINDOW = timedelta(days=8)
MAX_CONFLICTS = 50
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


def _local(dt: datetime, tz: ZoneInfo) -> datetime:
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
        return "UNTIL=" + _local(instant, tz).strftime("%Y%m%dT%H%M%S")

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
        start = _local(datetime.fromisoformat(dtstart) if isinstance(dtstart, str) else dtstart, tz)
        end = None
        if until is not None:
            end = _local(datetime.fromisoformat(until) if isinstance(until, str) else until, tz)
        ex = frozenset(_local(datetime.fromisoformat(e) if isinstance(e, str) else e, tz) for e in exdates)
        return cls(parse_rule(rule, start, tz), tz, end, ex)

    @classmethod
    def of_schedule(cls, sc: Schedule) -> Recurrence:
        return cls.of(sc.rrule, sc.dtstart, sc.until, sc.exdates or [], sc.timezone)

    def between(self, start: datetime, end: datetime, limit: int | None = None) -> list[datetime]:
        """UTC instants in [start, end] (both aware), in order."""
        lo = _local(start, self.tz) - timedelta(days=1)  # slack for offset changes; filtered below
        hi = _local(end, self.tz) + timedelta(days=1)
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


# -- the horizon (called from desired_state.build) ----------------------------------------------
def targets_match(targets: dict[str, Any], device: Device, district_of: dict[int, int | None]) -> bool:
    """Do these targets name the station (all, itself, its commune, its district, a tag of it)?"""
    if targets.get("all"):
        return True
    if device.id in (targets.get("devices") or []):
        return True
    if device.commune_id in (targets.get("communes") or []):
        return True
    if district_of.get(device.commune_id) in (targets.get("districts") or []):
        return True
    return bool(set(targets.get("tags") or []) & set(device.tags or []))


def horizon_items(
    session: Session, devices: list[Device], *, now: datetime, horizon: timedelta
) -> dict[int, list[ScheduleItem]]:
    """Every active schedule's occurrences in [now - its length - KEEP_PAST, now + horizon].

    Set-based (`communecast bench horizon`): schedules are indexed by what they target and
    each schedule is expanded once (cached across builds, `_occurrence_items`), not once per
    station, so a roll of 10,000 stations costs seconds rather than minutes.
    """
    speakers = [d for d in devices if d.kind == "speaker" and d.retired_at is None]
    out: dict[int, list[ScheduleItem]] = {d.id: [] for d in speakers}
    if not speakers:
        return out
    schedules = list(session.scalars(select(Schedule).where(Schedule.status == "active")))
    if not schedules:
        return out
    communes = {d.commune_id for d in speakers}
    district_of = dict(session.execute(select(Area.id, Area.parent_id).where(Area.id.in_(communes))).all())
    shas = {s for sc in schedules for s in sc.media}
    media = {m.sha256: m for m in session.scalars(select(Media).where(Media.sha256.in_(shas)))}
    # Which schedules (by position, to keep their order) each kind of target selects.
    everyone: list[int] = []
    index: dict[str, dict[Any, list[int]]] = {"devices": {}, "communes": {}, "districts": {}, "tags": {}}
    for pos, sc in enumerate(schedules):
        if any(s not in media for s in sc.media):
            continue
        targets = sc.targets or {}
        if targets.get("all"):
            everyone.append(pos)
            continue
        for key, by in index.items():
            for value in targets.get(key) or []:
                by.setdefault(value, []).append(pos)
    items_of: dict[int, list[ScheduleItem]] = {}
    merged: dict[tuple[int, ...], list[ScheduleItem]] = {}
    for d in speakers:
        chosen = set(everyone)
        chosen.update(index["devices"].get(d.id, ()))
        chosen.update(index["communes"].get(d.commune_id, ()))
        district = district_of.get(d.commune_id)
        if district is not None:
            chosen.update(index["districts"].get(district, ()))
        for tag in d.tags or ():
            chosen.update(index["tags"].get(tag, ()))
        if not chosen:
            continue
        key = tuple(sorted(chosen))
        items = merged.get(key)
        if items is None:
            items = []
            for pos in key:
                if pos not in items_of:
                    items_of[pos] = _occurrence_items(schedules[pos], media, now, horizon)
                items += items_of[pos]
            items.sort(key=lambda i: i.start_at)  # stable: same order as one schedule after another
            merged[key] = items
        out[d.id] = list(items)
    return out


# Each schedule's items, reused across builds while the window they cover contains the
# one asked for (a horizon roll asks for nearly the same window for every batch of
# stations). Keyed by everything an item depends on, so an edit simply misses the cache.
_EXPANDED: dict[tuple[Any, ...], tuple[datetime, datetime, list[ScheduleItem]]] = {}
_EXPANDED_MAX = 20_000
_CACHE_SLACK = timedelta(hours=12)


def _occurrence_items(sc: Schedule, media: dict[str, Media], now: datetime, horizon: timedelta
                      ) -> list[ScheduleItem]:
    refs = [MediaRef(sha256=s, size=media[s].size, duration_s=media[s].duration_s) for s in sc.media]
    since, until = now - timedelta(seconds=sc.duration_s) - KEEP_PAST, now + horizon
    key = (sc.id, sc.rrule, sc.dtstart, sc.until, tuple(sc.exdates or ()), sc.timezone, sc.title,
           sc.priority, tuple((r.sha256, r.size, r.duration_s) for r in refs))
    hit = _EXPANDED.get(key)
    if hit is None or not (hit[0] <= since and until <= hit[1]):
        lo, hi = since - _CACHE_SLACK, until + _CACHE_SLACK
        instants = Recurrence.of_schedule(sc).between(lo, hi, limit=MAX_CHECKED * 4)
        if len(instants) >= MAX_CHECKED * 4:  # too dense to cache: expand just this window
            instants = [o.start for o in occurrences(sc, since, until, limit=MAX_CHECKED)]
            lo, hi = since, until
        items = [ScheduleItem(item_id=item_id(sc.id, t), title=sc.title, start_at=t,
                              priority=Priority(sc.priority), media=refs) for t in instants]
        if len(_EXPANDED) >= _EXPANDED_MAX:
            _EXPANDED.clear()
        hit = _EXPANDED[key] = (lo, hi, items)
    return [i for i in hit[2] if since <= i.start_at <= until][:MAX_CHECKED]


# -- saving -----------------------------------------------------------------------------------------
@dataclass
class Saved:
    schedule: Schedule
    device_ids: list[int]
    conflicts: list[dict[str, Any]]
    policy: dict[str, Any]
    approved: bool


def _validate(
    session: Session, req: ScheduleIn, limits: Limits
) -> tuple[Recurrence, dict[str, Media], list[Device]]:
    media = {m.sha256: m for m in session.scalars(select(Media).where(Media.sha256.in_(req.media)))}
    for sha in req.media:
        if sha not in media:
            raise NotFound("media.not_found", sha256=sha)
    check_rule_text(req.rrule)
    rec = Recurrence.of(req.rrule, req.dtstart, req.until, req.exdates, req.timezone)
    check_rule(rec.rule, req.rrule, limits)  # the rule dateutil built, not its text
    devices = resolve(session, req.targets, kind="speaker")
    if not devices:
        raise UserError(422, "broadcast.no_targets")
    return rec, media, devices


def _apply(sc: Schedule, req: ScheduleIn, rec: Recurrence, media: dict[str, Media]) -> None:
    sc.title = req.title
    sc.media = list(req.media)
    sc.duration_s = sum(media[s].duration_s for s in req.media)
    sc.rrule = req.rrule.strip()
    sc.dtstart = _local(req.dtstart, rec.tz).isoformat()
    sc.until = rec.until_local.isoformat() if rec.until_local else None
    sc.exdates = sorted(e.isoformat() for e in rec.exdates_local)
    sc.timezone = req.timezone
    sc.targets = req.targets.model_dump(exclude_defaults=True)
    sc.priority = req.priority.value
    sc.override_reason = req.override_reason
    sc.updated_at = utcnow()


def save(
    session: Session, req: ScheduleIn, user: User, *, schedule_id: int | None = None,
    now: datetime | None = None, limits: Limits | None = None,
) -> Saved:
    """Create (schedule_id None) or replace a schedule: validate, policy, approval, conflicts.

    `limits`: the settings' schedule limits (schedule_limits.Limits.of(settings))."""
    now = now or datetime.now(UTC)
    limits = limits or Limits.defaults()
    rec, media, devices = _validate(session, req, limits)
    old_devices: list[int] = []
    if schedule_id is None:
        sc = Schedule(created_by=user.id, status="draft")
    else:
        found = session.get(Schedule, schedule_id)
        if found is None or found.status == "deleted":
            raise NotFound("schedule.not_found", id=schedule_id)
        sc = found
        old_devices = [d.id for d in resolve(session, Targets.model_validate(sc.targets), kind="speaker")]
    _apply(sc, req, rec, media)
    upcoming = [Occurrence(t, sc.duration_s) for t in rec.between(now, now + CHECK_WINDOW, MAX_CHECKED)]
    communes = sorted({d.commune_id for d in devices})
    outcome = policy.enforce(
        session, user, communes, upcoming, req.priority, req.override_reason,
        exclude_schedule=schedule_id,
    )
    approved = approval.can_approve(session, user, communes)
    session.add(sc)
    session.flush()
    action = "schedule.create" if schedule_id is None else "schedule.update"
    audit.record(session, user.id, action, "schedule", sc.id, title=sc.title, rrule=sc.rrule,
                 dtstart=sc.dtstart, until=sc.until, targets=sc.targets, priority=sc.priority,
                 stations=len(devices), policy=outcome)
    if outcome.get("status") == "override":
        audit.record(session, user.id, "policy.override", "schedule", sc.id,
                     reason=req.override_reason, rule=outcome.get("rule"))
    if approved:
        sc.status, sc.approved_by, sc.approved_at = "active", user.id, now
        audit.record(session, user.id, "schedule.approve", "schedule", sc.id, automatic=True,
                     why="creator has approval rights for the area")
        check_desired_size(session, devices, limits, now=now)  # active now: in its stations' states
    else:
        sc.status, sc.approved_by, sc.approved_at = "draft", None, None
    found_conflicts = conflicts(session, sc, devices, now=now)
    ids = sorted({d.id for d in devices} | set(old_devices))
    dispatch.stations_changed(session, ids)
    return Saved(sc, ids, found_conflicts, outcome, approved)


def delete(session: Session, schedule_id: int, user: User) -> list[int]:
    sc = session.get(Schedule, schedule_id)
    if sc is None or sc.status == "deleted":
        raise NotFound("schedule.not_found", id=schedule_id)
    sc.status = "deleted"
    sc.updated_at = utcnow()
    audit.record(session, user.id, "schedule.delete", "schedule", sc.id, title=sc.title)
    ids = [d.id for d in resolve(session, Targets.model_validate(sc.targets), kind="speaker")]
    dispatch.stations_changed(session, ids)
    return ids


def approve(
    session: Session, schedule_id: int, user: User, *, now: datetime | None = None,
    limits: Limits | None = None,
) -> list[int]:  # fmt: skip
    sc = session.get(Schedule, schedule_id)
    if sc is None or sc.status == "deleted":
        raise NotFound("schedule.not_found", id=schedule_id)
    devices = resolve(session, Targets.model_validate(sc.targets), kind="speaker")
    approval.require(session, user, {d.commune_id for d in devices})
    if sc.status != "active":
        now, limits = now or datetime.now(UTC), limits or Limits.defaults()
        check_rule_text(sc.rrule)  # a draft saved before these checks existed
        check_rule(Recurrence.of_schedule(sc).rule, sc.rrule, limits)
        sc.status, sc.approved_by, sc.approved_at = "active", user.id, now
        check_desired_size(session, devices, limits, now=now)
        audit.record(session, user.id, "schedule.approve", "schedule", sc.id, title=sc.title)
    dispatch.stations_changed(session, [d.id for d in devices])
    return [d.id for d in devices]


# -- conflicts ------------------------------------------------------------------------------------------
def _resolution(mine: Priority, other: Priority, mine_first: bool) -> str:
    if mine.rank > other.rank:
        return "preempts"  # this schedule takes the horn; the other is interrupted or waits
    if mine.rank < other.rank:
        return "preempted"
    return "other_waits" if mine_first else "waits"


def conflicts(
    session: Session, sc: Schedule, devices: list[Device], *, now: datetime
) -> list[dict[str, Any]]:
    """Overlaps on shared stations in the coming days, and how the horn will resolve them.

    Equal priority: the one that starts later waits for the horn (and is reported missed
    if that wait exceeds the station's late-start tolerance). Higher priority preempts.
    """
    end = now + CONFLICT_WINDOW
    mine = [Occurrence(t, sc.duration_s) for t in Recurrence.of_schedule(sc).between(now, end, MAX_CHECKED)]
    if not mine:
        return []
    my_ids = {d.id for d in devices}
    my_priority = Priority(sc.priority)
    others: list[tuple[str, int, str, Priority, list[Occurrence], set[int]]] = []
    for other in session.scalars(select(Schedule).where(Schedule.status.in_(("active", "draft")),
                                                        Schedule.id != sc.id)):
        shared = {d.id for d in resolve(session, Targets.model_validate(other.targets))} & my_ids
        if shared:
            occ = occurrences(other, now - timedelta(seconds=other.duration_s), end, MAX_CHECKED)
            others.append(("schedule", other.id, other.title, Priority(other.priority), occ, shared))
    rows = session.execute(
        select(Broadcast, Delivery.device_id).join(Delivery, Delivery.broadcast_id == Broadcast.id)
        .where(Broadcast.status.in_(("scheduled", "draft")), Broadcast.start_at <= end,
               Broadcast.start_at >= now - timedelta(days=1), Delivery.device_id.in_(my_ids))
    ).all()
    by_bc: dict[int, tuple[Broadcast, set[int]]] = {}
    for bc, dev in rows:
        by_bc.setdefault(bc.id, (bc, set()))[1].add(dev)
    for bc, shared in by_bc.values():
        others.append(("broadcast", bc.id, bc.title, Priority(bc.priority),
                       [Occurrence(bc.start_at, bc.duration_s)], shared))
    found: list[dict[str, Any]] = []
    for kind, oid, title, prio, occs, shared in others:
        for a in mine:
            for b in occs:
                if a.start < b.end and b.start < a.end:
                    found.append({
                        "with": {"type": kind, "id": oid, "title": title, "priority": prio.value},
                        "at": a.start.isoformat(), "other_at": b.start.isoformat(),
                        "stations": sorted(shared),
                        "resolution": _resolution(my_priority, prio, a.start <= b.start),
                    })  # fmt: skip
                    if len(found) >= MAX_CONFLICTS:
                        return found
    return found


def schedule_json(sc: Schedule) -> dict[str, Any]:
    return {
        "id": sc.id, "title": sc.title, "media": sc.media, "duration_s": sc.duration_s,
        "rrule": sc.rrule, "dtstart": sc.dtstart, "until": sc.until, "exdates": sc.exdates,
        "timezone": sc.timezone, "targets": sc.targets, "priority": sc.priority, "status": sc.status,
        "approved": sc.status == "active", "override_reason": sc.override_reason,
        "created_by": sc.created_by, "created_at": sc.created_at.isoformat() if sc.created_at else None,
        "approved_by": sc.approved_by,
        "approved_at": sc.approved_at.isoformat() if sc.approved_at else None,
    }  # fmt: skip
