"""Evaluates the alarm rules and opens, keeps and resolves alarms (docs/health.md).

Ingest hands each stored batch to `submit` (no waiting: it only keeps the latest
telemetry per station and the relevant events); the engine's own task evaluates them in
one transaction per round, coalescing whatever arrived meanwhile, so a slow round never
slows ingest. A periodic tick evaluates the offline rule. At most one alarm per station
and kind is active: the unique `active_key` decides even between controller replicas.
How long a condition has lasted (`for_s`) is tracked in memory from sample timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from controller.core.config import Settings
from controller.core.errors import NotFound, UserError
from controller.db.models import Device, User
from controller.db.models_health import Alarm
from controller.db.session import Database
from controller.db.statuses import ACTIVE_ALARM, AlarmState, DeviceKind
from controller.services import audit, metrics
from controller.services.alarms import rules
from controller.services.alarms.notify import AlarmNote, NotificationHub
from protocol.messages import Event, EventKind, Telemetry

log = logging.getLogger(__name__)

ALARM_EVENTS = (EventKind.MISSED, EventKind.PLAY_FINISHED)


@dataclass
class Pending:
    tele: dict[str, Telemetry] = field(default_factory=dict)  # uid -> latest sample
    events: list[tuple[str, Event]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tele or self.events)


_Closing = tuple[Alarm, Device, dict[str, Any]]


@dataclass
class _Round:
    """One evaluation: alarms active now, and the opens and resolves decided so far."""

    active: dict[tuple[int, str], Alarm]
    opening: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    closing: list[_Closing] = field(default_factory=list)


def active_key(device_id: int, kind: str) -> str:
    return f"{device_id}:{kind}"


class AlarmEngine:
    def __init__(self, db: Database, settings: Settings, hub: NotificationHub | None = None) -> None:
        self._db = db
        self._settings = settings
        self.hub = hub
        self.telemetry_rules = rules.telemetry_rules(settings)
        self.offline = rules.offline_rule(settings)
        self._since: dict[tuple[int, str], datetime] = {}
        self._pending = Pending()
        self._wakeup = asyncio.Event()
        self.rounds = 0

    # -- input ---------------------------------------------------------------------------------
    def submit(self, telemetry: Iterable[tuple[str, Telemetry]], events: Iterable[tuple[str, Event]]) -> None:
        """Called by ingest on the event loop after a batch is stored."""
        for uid, tele in telemetry:
            self._pending.tele[uid] = tele
        self._pending.events += [(u, e) for u, e in events if e.kind in ALARM_EVENTS]
        if self._pending:
            self._wakeup.set()

    async def run(self) -> None:
        tick = self._settings.health_tick_s
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        # Right after a (re)start last_seen is stale for every station until it speaks again:
        # judge 'offline' only once the controller itself has listened for that long.
        offline_from = loop.time() + self.offline.after_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(next_tick, offline_from) - loop.time())
            self._wakeup.clear()
            batch, self._pending = self._pending, Pending()
            do_tick = loop.time() >= next_tick and loop.time() >= offline_from
            if do_tick:
                next_tick = loop.time() + tick
            try:
                notes = await asyncio.to_thread(self.evaluate, batch, tick=do_tick)
            except Exception:
                log.exception("alarm evaluation failed; next round retries with fresh data")
                continue
            self.rounds += 1
            if notes and self.hub is not None:
                self.hub.publish(notes)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, batch: Pending, *, tick: bool, now: datetime | None = None) -> list[AlarmNote]:
        now = now or datetime.now(UTC)
        with self._db.session() as s:
            uids = sorted(set(batch.tele) | {u for u, _ in batch.events})
            devices: dict[str, Device] = {}
            for i in range(0, len(uids), 1000):
                chunk = select(Device).where(Device.uid.in_(uids[i : i + 1000]))
                devices.update({d.uid: d for d in s.scalars(chunk)})
            offline_ids: set[int] = set()
            if tick:
                cutoff = now.timestamp() - self.offline.after_s
                silent = select(Device).where(Device.retired_at.is_(None), Device.last_seen.is_not(None),
                                              Device.last_seen < datetime.fromtimestamp(cutoff, UTC))
                stale = {d.id: d for d in s.scalars(silent)}
                has_offline = select(Device).join(Alarm, Alarm.device_id == Device.id).where(
                    Alarm.kind == rules.OFFLINE, Alarm.state != AlarmState.RESOLVED)
                stale.update({d.id: d for d in s.scalars(has_offline)})
                offline_ids = set(stale)
                for d in stale.values():
                    devices.setdefault(d.uid, d)
            by_id = {d.id: d for d in devices.values()}
            rnd = _Round(self._active(s, list(by_id)))
            active = rnd.active
            for uid, tele in batch.tele.items():
                d = devices.get(uid)
                if d is None or d.retired_at is not None:
                    continue
                sample = rules.Sample(d.id, now, bool(d.online), d.last_seen,
                                      tele.model_dump(exclude={"extra"}))
                for rule in self.telemetry_rules:
                    if d.kind == DeviceKind.LED and rule.kind == "speaker_line":
                        continue
                    verdict = rule.check(sample, (d.id, rule.kind) in active)
                    self._apply(rnd, d, rule.kind, verdict, rule.for_s, tele.ts, now)
            for device_id in offline_ids:
                d = by_id[device_id]
                sample = rules.Sample(d.id, now, bool(d.online), d.last_seen, {})
                verdict = self.offline.check(sample, (d.id, rules.OFFLINE) in active)
                self._apply(rnd, d, rules.OFFLINE, verdict, 0.0, now, now)
            for uid, ev in batch.events:
                d = devices.get(uid)
                if d is None:
                    continue
                # A missed bulletin opens; the station's next proof of play resolves.
                missed = ev.kind is EventKind.MISSED
                detail = {"item_id": ev.item_id, "broadcast_id": ev.broadcast_id, "reason": ev.reason}
                verdict = rules.Verdict(missed, detail if missed else {})
                self._apply(rnd, d, rules.MISSED, verdict, 0.0, ev.ts, now)
            notes = _close_many(s, rnd.closing, now) + _open_many(s, rnd.opening, by_id)
        for n in notes:
            metrics.ALARM_TRANSITIONS.labels(n.kind, n.event).inc()
        return notes

    def _active(self, s: Session, device_ids: list[int]) -> dict[tuple[int, str], Alarm]:
        out: dict[tuple[int, str], Alarm] = {}
        for i in range(0, len(device_ids), 1000):
            q = select(Alarm).where(Alarm.device_id.in_(device_ids[i : i + 1000]),
                                    Alarm.state != AlarmState.RESOLVED)
            out.update({(a.device_id, a.kind): a for a in s.scalars(q)})
        return out

    def _apply(
        self, rnd: _Round, device: Device, kind: str, verdict: rules.Verdict | None, for_s: float,
        sample_ts: datetime, now: datetime,
    ) -> None:  # fmt: skip
        """Decide for one station and kind; changes are written together by the caller."""
        active, opening, closing = rnd.active, rnd.opening, rnd.closing
        if verdict is None:
            return
        key = (device.id, kind)
        alarm = active.get(key)
        if not verdict.bad:
            self._since.pop(key, None)
            opening.pop(key, None)
            if alarm is None:
                return
            del active[key]
            closing.append((alarm, device, verdict.detail))
            return
        if alarm is not None or key in opening:
            self._since.pop(key, None)
            return
        since = self._since.setdefault(key, sample_ts)
        if (sample_ts - since).total_seconds() < for_s:
            return
        self._since.pop(key, None)
        opening[key] = {"device_id": device.id, "kind": kind, "state": AlarmState.OPEN,
                        "active_key": active_key(device.id, kind), "opened_at": now,
                        "detail": {**verdict.detail, "since": since.isoformat()}}  # fmt: skip


def _close_many(s: Session, closing: list[_Closing], now: datetime) -> list[AlarmNote]:
    """Resolve with `WHERE state != 'resolved' RETURNING id`: when two replicas (or a technician)
    close the same alarm at once, only the one that changed the row sends a notification."""
    notes: list[AlarmNote] = []
    with s.no_autoflush:
        for i in range(0, len(closing), 500):
            chunk = {alarm.id: (alarm, device, cleared) for alarm, device, cleared in closing[i : i + 500]}
            changed = s.scalars(
                update(Alarm).where(Alarm.id.in_(list(chunk)), Alarm.state != AlarmState.RESOLVED)
                .values(state=AlarmState.RESOLVED, resolved_at=now, active_key=None).returning(Alarm.id)
            ).all()  # fmt: skip
            details = {a_id: {**(chunk[a_id][0].detail or {}), "cleared": chunk[a_id][2]} for a_id in changed}
            if details:  # ORM bulk UPDATE by primary key: one executemany
                s.execute(update(Alarm), [{"id": a_id, "detail": d} for a_id, d in details.items()])
            for a_id in sorted(changed):
                alarm, device, _ = chunk[a_id]
                for name, value in (("state", AlarmState.RESOLVED), ("resolved_at", now),
                                    ("active_key", None), ("detail", details[a_id])):  # fmt: skip
                    set_committed_value(alarm, name, value)
                notes.append(_note("resolved", alarm, device))
    return notes


def _open_many(
    s: Session, opening: dict[tuple[int, str], dict[str, Any]], devices: dict[int, Device]
) -> list[AlarmNote]:
    """INSERT ... ON CONFLICT (active_key) DO NOTHING RETURNING id, a few hundred rows per statement:
    one active alarm per station and kind, and a district-wide mains loss opens in one round trip."""
    rows = list(opening.values())
    upsert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(s.get_bind().dialect.name)
    ids: list[int] = []
    for i in range(0, len(rows), 500):
        chunk = rows[i : i + 500]
        if upsert is not None:
            stmt = upsert(Alarm).values(chunk).on_conflict_do_nothing(index_elements=["active_key"])
        else:  # pragma: no cover - other databases: a plain insert (the unique index still guards)
            stmt = insert(Alarm).values(chunk)
        ids += s.scalars(stmt.returning(Alarm.id)).all()  # rows another replica opened first are skipped
    notes = []
    for i in range(0, len(ids), 1000):
        for alarm in s.scalars(select(Alarm).where(Alarm.id.in_(ids[i : i + 1000])).order_by(Alarm.id)):
            notes.append(_note("opened", alarm, devices[alarm.device_id]))
    return notes


def _note(event: str, alarm: Alarm, device: Device) -> AlarmNote:
    return AlarmNote(
        event=event, alarm_id=alarm.id, device_id=device.id, device_uid=device.uid, device_name=device.name,
        kind=alarm.kind, state=alarm.state, opened_at=alarm.opened_at, acknowledged_at=alarm.acknowledged_at,
        resolved_at=alarm.resolved_at, detail=dict(alarm.detail or {}),
    )  # fmt: skip


# -- operator actions (routes) ----------------------------------------------------------------------
# The `state` filter of the alarm list: one state, or "active" (not resolved yet).
STATES: dict[str, tuple[AlarmState, ...]] = {**{s.value: (s,) for s in AlarmState}, "active": ACTIVE_ALARM}


def to_json(alarm: Alarm, device: Device | None = None) -> dict[str, Any]:
    return {
        "id": alarm.id, "device_id": alarm.device_id, "kind": alarm.kind, "state": alarm.state,
        "device_uid": device.uid if device else None, "device_name": device.name if device else None,
        "opened_at": alarm.opened_at.isoformat(),
        "acknowledged_at": alarm.acknowledged_at.isoformat() if alarm.acknowledged_at else None,
        "acknowledged_by": alarm.acknowledged_by, "ack_note": alarm.ack_note,
        "resolved_at": alarm.resolved_at.isoformat() if alarm.resolved_at else None,
        "resolved_by": alarm.resolved_by, "detail": alarm.detail or {},
    }  # fmt: skip


def list_alarms(s: Session, *, state: str | None, device_id: int | None, kind: str | None,
                limit: int, communes: set[int] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Newest first; `communes` limits to stations in those communes (an area-scoped user)."""
    q = select(Alarm, Device).join(Device, Device.id == Alarm.device_id).order_by(Alarm.opened_at.desc())
    if communes is not None:
        q = q.where(Device.commune_id.in_(communes))
    if state:
        if state not in STATES:
            raise UserError(422, "alarm.bad_state", state=state)
        q = q.where(Alarm.state.in_(STATES[state]))
    if device_id is not None:
        q = q.where(Alarm.device_id == device_id)
    if kind:
        q = q.where(Alarm.kind == kind)
    return [to_json(a, d) for a, d in s.execute(q.limit(max(1, min(limit, 5000))))]


def acknowledge(s: Session, alarm_id: int, user: User, note: str | None) -> tuple[Alarm, AlarmNote | None]:
    """Open -> acknowledged (audited); acknowledging twice changes nothing."""
    alarm = s.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFound("alarm.not_found", id=alarm_id)
    if alarm.state == AlarmState.RESOLVED:
        raise UserError(409, "alarm.already_resolved", id=alarm_id,
                        resolved_at=alarm.resolved_at.isoformat() if alarm.resolved_at else "")
    if alarm.state == AlarmState.ACKNOWLEDGED:
        return alarm, None
    now = datetime.now(UTC)
    s.execute(update(Alarm).where(Alarm.id == alarm_id, Alarm.state == AlarmState.OPEN)
              .values(state=AlarmState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=user.id,
                      ack_note=note))
    s.refresh(alarm)
    audit.record(s, user.id, "alarm.acknowledge", "alarm", alarm_id, kind=alarm.kind,
                 device_id=alarm.device_id, note=note)  # fmt: skip
    metrics.ALARM_TRANSITIONS.labels(alarm.kind, "acknowledged").inc()
    device = s.get(Device, alarm.device_id)
    return alarm, _note("acknowledged", alarm, device) if device else None


def resolve_manually(
    s: Session, alarm_id: int, user: User, note: str | None
) -> tuple[Alarm, AlarmNote | None]:
    """A technician closes an alarm (e.g. a missed broadcast that was re-sent); audited."""
    alarm = s.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFound("alarm.not_found", id=alarm_id)
    if alarm.state == AlarmState.RESOLVED:
        return alarm, None
    alarm.state, alarm.resolved_at, alarm.active_key = AlarmState.RESOLVED, datetime.now(UTC), None
    alarm.resolved_by = user.id
    if note:
        alarm.detail = {**(alarm.detail or {}), "resolve_note": note}
    audit.record(s, user.id, "alarm.resolve", "alarm", alarm_id, kind=alarm.kind, device_id=alarm.device_id,
                 note=note)  # fmt: skip
    metrics.ALARM_TRANSITIONS.labels(alarm.kind, "resolved").inc()
    device = s.get(Device, alarm.device_id)
    return alarm, _note("resolved", alarm, device) if device else None
