"""Schedule occurrences as horizon items: what each station should play from its recurring
schedules over the coming days (services/desired_state.py builds with it, schedule_limits.py
sizes it). Expansions are cached per schedule and shared by every station it targets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import AreaGroupMember, Device, Media
from controller.db.models_schedules import Schedule
from controller.db.statuses import DeviceKind, ScheduleStatus
from controller.services.recurrence import MAX_CHECKED, Recurrence, item_id, occurrences
from protocol.messages import MediaRef, Priority, ScheduleItem

# Occurrences that ended longer ago than this are dropped from the horizon.
KEEP_PAST = timedelta(minutes=10)


# -- the horizon (called from desired_state.build) ----------------------------------------------
def groups_by_commune(session: Session, communes: Iterable[int]) -> dict[int, set[int]]:
    """The groups each of these communes belongs to (a commune may be in several)."""
    out: dict[int, set[int]] = {}
    ids = set(communes)
    if ids:
        q = select(AreaGroupMember.group_id, AreaGroupMember.commune_id)
        q = q.where(AreaGroupMember.commune_id.in_(ids))
        for group_id, commune_id in session.execute(q):
            out.setdefault(commune_id, set()).add(group_id)
    return out


def targets_match(targets: dict[str, Any], device: Device, groups_of: dict[int, set[int]]) -> bool:
    """Do these stored targets name the station (all, itself, its commune, a group of its commune,
    a tag of it)? `groups_of` is `groups_by_commune`; stored `districts` (rows written before
    migration 0021 by an older replica) are the same ids as groups."""
    if targets.get("all"):
        return True
    if device.id in (targets.get("devices") or []):
        return True
    if device.commune_id in (targets.get("communes") or []):
        return True
    named = {*(targets.get("groups") or []), *(targets.get("districts") or [])}
    if named and named & groups_of.get(device.commune_id, set()):
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
    speakers = [d for d in devices if d.kind == DeviceKind.SPEAKER and d.retired_at is None]
    out: dict[int, list[ScheduleItem]] = {d.id: [] for d in speakers}
    if not speakers:
        return out
    schedules = list(session.scalars(select(Schedule).where(Schedule.status == ScheduleStatus.ACTIVE)))
    if not schedules:
        return out
    communes = {d.commune_id for d in speakers}
    groups_of = groups_by_commune(session, communes)
    shas = {s for sc in schedules for s in sc.media}
    media = {m.sha256: m for m in session.scalars(select(Media).where(Media.sha256.in_(shas)))}
    # Which schedules (by position, to keep their order) each kind of target selects.
    everyone: list[int] = []
    index: dict[str, dict[Any, list[int]]] = {"devices": {}, "communes": {}, "groups": {}, "tags": {}}
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
        for value in targets.get("districts") or []:  # stored before migration 0021: same ids as groups
            index["groups"].setdefault(value, []).append(pos)
    items_of: dict[int, list[ScheduleItem]] = {}
    merged: dict[tuple[int, ...], list[ScheduleItem]] = {}
    for d in speakers:
        chosen = set(everyone)
        chosen.update(index["devices"].get(d.id, ()))
        chosen.update(index["communes"].get(d.commune_id, ()))
        for group in groups_of.get(d.commune_id, ()):
            chosen.update(index["groups"].get(group, ()))
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


def clear_cache() -> None:
    """Forget every cached expansion, as a controller start does (benchmarks time a cold roll)."""
    _EXPANDED.clear()


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


