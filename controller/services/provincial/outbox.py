"""The durable outbox: canonical records in, batches out, deleted only after a 2xx.

Play logs are enqueued by ingest in the same transaction that gives a play-log row its
final status (controller/services/ingest.py calls `enqueue_play_logs`). That, not an
id watermark over `play_log`, is what cannot lose a row: play-log rows are updated in
place (playing -> played), which a watermark never sees again, and on PostgreSQL ids
are taken before commit, so with several ingest writers (replicas) a row with a lower id
can commit after a higher one and a watermark would already be past it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from controller.db.models import Area, Broadcast, Device, PlayLog
from controller.db.models_provincial import ProvincialOutbox, ProvincialState
from controller.db.models_schedules import Schedule
from controller.db.statuses import FINAL_PLAY, OperatingState, OutboxKind
from controller.services import recurrence
from controller.services.provincial.config import ProvincialSettings

log = logging.getLogger(__name__)

STATUS = OutboxKind.STATUS
PLAY_LOG = OutboxKind.PLAY_LOG
# A play log is reported when it reaches one of these (a later correction of 'missed'
# by a late proof of play is reported too, under its own idempotency key).
REPORTED = set(FINAL_PLAY)
MAINS_MIN_V = 150.0  # below this the cabinet is not on mains (PZEM reading)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt is not None else None


def _stamp(dt: datetime) -> str:
    return f"{dt.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}"


# -- status -----------------------------------------------------------------------------------
def status_record(device: Device, commune_code: str | None, supplier: str, now: datetime) -> dict[str, Any]:
    reported = device.reported or {}
    tele = reported.get("telemetry") or {}
    extra = tele.get("extra") or {}
    mains = tele.get("mains_v")
    if not device.online:
        state = OperatingState.OFFLINE
    elif reported.get("playing"):
        state = OperatingState.PLAYING
    else:
        state = OperatingState.IDLE
    power = None if mains is None else ("mains" if float(mains) >= MAINS_MIN_V else "no_mains")
    return {
        "idempotency_key": f"st:{device.uid}:{_stamp(now)}",
        "station_id": device.uid, "imei": extra.get("imei"), "name": device.name, "type": device.kind,
        "supplier": extra.get("supplier") or supplier, "volume": tele.get("volume"),
        "operating_state": state, "online": bool(device.online),
        "connection_type": extra.get("connection_type"), "signal": extra.get("signal_dbm"),
        "latitude": device.lat, "longitude": device.lon, "power": power, "mains_voltage": mains,
        "temperature": tele.get("cabinet_temp_c"), "storage": extra.get("storage_free_mb"),
        "playing": reported.get("playing"), "commune_code": commune_code,
        "reported_at": _iso(device.last_seen) or _iso(now),
    }  # fmt: skip


def snapshot_status(session: Session, settings: ProvincialSettings, now: datetime | None = None) -> int:
    """Enqueue one status record per active station (one transaction, the caller's)."""
    now = now or datetime.now(UTC)
    rows = session.execute(
        select(Device, Area.code).join(Area, Area.id == Device.commune_id).where(Device.retired_at.is_(None))
    ).all()
    if not rows:
        return 0
    if settings.status_coalesce:
        session.execute(delete(ProvincialOutbox).where(ProvincialOutbox.kind == STATUS))
    records = [status_record(d, code, settings.supplier, now) for d, code in rows]
    session.execute(insert(ProvincialOutbox), [
        {"kind": STATUS, "device_id": d.id, "idempotency_key": r["idempotency_key"], "record": r,
         "created_at": now, "attempts": 0}
        for (d, _), r in zip(rows, records, strict=True)
    ])  # fmt: skip
    return len(records)


# -- play logs ------------------------------------------------------------------------------------
def play_log_record(
    row: PlayLog, device: Device, bc: Broadcast | None, sc: Schedule | None, commune_code: str | None = None
) -> dict[str, Any]:
    source = bc if bc is not None else sc
    priority = source.priority if source is not None else None
    if row.started_at is not None and row.finished_at is not None:
        duration: float | None = round((row.finished_at - row.started_at).total_seconds(), 1)
    else:
        duration = source.duration_s if source is not None else None
    if bc is not None:
        bulletin_id, kind = f"b{bc.id}", "broadcast"
    elif sc is not None:
        bulletin_id, kind = f"s{sc.id}", "schedule"
    else:
        bulletin_id, kind = row.item_id, "other"
    tele = (device.reported or {}).get("telemetry") or {}
    return {
        "idempotency_key": f"pl:{device.uid}:{row.item_id}:{row.status}",
        "station_id": device.uid, "bulletin_id": bulletin_id, "bulletin_type": kind, "item_id": row.item_id,
        "priority": priority, "title": source.title if source is not None else None, "category": None,
        "duration_s": duration, "started_at": _iso(row.started_at), "finished_at": _iso(row.finished_at),
        "relay": priority == "relay", "relay_source": None, "volume": tele.get("volume"),
        "status": row.status, "reason": row.reason, "commune_code": commune_code,
    }  # fmt: skip


def enqueue_play_logs(session: Session, rows: list[PlayLog]) -> int:
    """Ingest's hook: queue the rows that just reached a reported status, in its transaction.

    Runs in a savepoint: a fault here is logged and never costs ingest its batch (the
    play log itself is the truth and stays stored).
    """
    rows = [r for r in rows if r.status in REPORTED]
    if not rows:
        return 0
    session.flush()  # ingest's own writes fail here, outside the savepoint, as they would anyway
    try:
        with session.begin_nested():
            devices = {d.id: d for d in session.scalars(
                select(Device).where(Device.id.in_({r.device_id for r in rows})))}
            bc_ids = {r.broadcast_id for r in rows if r.broadcast_id is not None}
            bcs = {b.id: b for b in session.scalars(select(Broadcast).where(Broadcast.id.in_(bc_ids)))}
            sc_of = {r.item_id: p[0] for r in rows if (p := recurrence.parse_item_id(r.item_id))}
            sc_q = select(Schedule).where(Schedule.id.in_(set(sc_of.values())))
            scs = {s.id: s for s in session.scalars(sc_q)} if sc_of else {}
            now = datetime.now(UTC)
            codes = dict(session.execute(select(Area.id, Area.code).where(
                Area.id.in_({d.commune_id for d in devices.values()}))).all())
            values = []
            for r in rows:
                device = devices.get(r.device_id)
                if device is None:
                    continue
                bc = bcs.get(r.broadcast_id or -1)
                rec = play_log_record(r, device, bc, scs.get(sc_of.get(r.item_id, -1)),
                                      codes.get(device.commune_id))
                values.append({"kind": PLAY_LOG, "device_id": device.id, "record": rec, "created_at": now,
                               "idempotency_key": rec["idempotency_key"], "attempts": 0})
            if values:
                session.execute(insert(ProvincialOutbox), values)
            return len(values)
    except Exception:
        log.exception("could not queue %d play logs for the province", len(rows))
        return 0


# -- delivery bookkeeping ------------------------------------------------------------------------------
def next_batch(session: Session, kind: str, limit: int) -> list[ProvincialOutbox]:
    q = select(ProvincialOutbox).where(ProvincialOutbox.kind == kind)
    return list(session.scalars(q.order_by(ProvincialOutbox.id).limit(limit)))


def _state(session: Session) -> ProvincialState:
    row = session.get(ProvincialState, 1)
    if row is None:
        row = ProvincialState(id=1, logins=0, delivered_status=0, delivered_play_log=0)
        session.add(row)
        session.flush()
    return row


def delivered(session: Session, kind: str, ids: list[int], now: datetime | None = None) -> None:
    """The province answered 2xx: these rows are done."""
    now = now or datetime.now(UTC)
    for i in range(0, len(ids), 1000):
        session.execute(delete(ProvincialOutbox).where(ProvincialOutbox.id.in_(ids[i : i + 1000])))
    st = _state(session)
    st.last_success_at = st.last_attempt_at = now
    if kind == STATUS:
        st.delivered_status += len(ids)
    else:
        st.delivered_play_log += len(ids)


def failed(session: Session, ids: list[int], key: str, params: dict[str, Any],
           now: datetime | None = None) -> None:
    """Keep the rows (nothing is dropped), count the attempt, remember the error for the status page."""
    now = now or datetime.now(UTC)
    detail = json.dumps(params, ensure_ascii=False, default=str)
    for i in range(0, len(ids), 1000):
        session.execute(update(ProvincialOutbox).where(ProvincialOutbox.id.in_(ids[i : i + 1000]))
                        .values(attempts=ProvincialOutbox.attempts + 1, last_error=f"{key} {detail}"[:2000]))
    st = _state(session)
    st.last_attempt_at = st.last_error_at = now
    st.last_error_key, st.last_error_detail = key, detail


def logged_in(session: Session, now: datetime | None = None) -> None:
    st = _state(session)
    st.logins += 1
    st.last_login_at = now or datetime.now(UTC)


def depth(session: Session) -> dict[str, Any]:
    rows = session.execute(
        select(ProvincialOutbox.kind, func.count(), func.min(ProvincialOutbox.created_at))
        .group_by(ProvincialOutbox.kind)
    ).all()
    counts = {STATUS: 0, PLAY_LOG: 0}
    oldest: datetime | None = None
    for kind, n, first in rows:
        counts[kind] = int(n)
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    return {**counts, "total": sum(counts.values()), "oldest_at": _iso(oldest)}


def state(session: Session) -> ProvincialState | None:
    return session.get(ProvincialState, 1)
