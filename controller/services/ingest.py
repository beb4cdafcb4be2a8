"""Everything stations say (state, events, telemetry) lands here, in batches.

Messages are queued by the MQTT handler and written by one worker in one transaction
per batch. Events are stored once by id, so a QoS 1 redelivery or an outbox replay
after reconnection never doubles a play-log entry. A message that does not parse is
counted and logged, never stored half-way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from controller.db.models import Delivery, Device, DeviceEvent, PlayLog
from controller.db.session import Database
from protocol import topics
from protocol.messages import Event, EventKind, ReportedState, Telemetry

log = logging.getLogger(__name__)

MAX_BATCH = 1000
# Statuses an agent reports as final; 'missed' written by the controller may still be
# corrected by a late proof of play, but a final status never goes back to 'playing'.
FINAL = {"played", "interrupted", "failed"}
LAST_SEEN_RESOLUTION = timedelta(seconds=2)
DELIVERY_EVENTS = (EventKind.ACK, EventKind.REJECTED)
STATUS_BY_EVENT = {
    EventKind.PLAY_STARTED: "playing",
    EventKind.PLAY_FINISHED: "played",
    EventKind.INTERRUPTED: "interrupted",
    EventKind.PLAY_FAILED: "failed",
    EventKind.MISSED: "missed",
}


@dataclass
class IngestStats:
    received: int = 0
    stored_events: int = 0
    duplicates: int = 0
    rejected: int = 0
    unknown_device: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Parsed:
    uid: str
    channel: str
    model: ReportedState | Event | Telemetry


class Ingest:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.stats = IngestStats()
        self._device_ids: dict[str, int] = {}
        self.processed = asyncio.Event()

    async def handle(self, topic: str, payload: bytes) -> None:
        self.stats.received += 1
        self._queue.put_nowait((topic, payload))

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            parsed = [p for p in (self._parse(t, b) for t, b in batch) if p is not None]
            if parsed:
                try:
                    await asyncio.to_thread(self._store, parsed)
                except Exception:
                    log.exception("ingest batch failed; storing one by one")
                    for p in parsed:
                        try:
                            await asyncio.to_thread(self._store, [p])
                        except Exception:
                            self.stats.rejected += 1
                            log.exception("dropping unstorable message from %s", p.uid)
            self.processed.set()

    def _parse(self, topic: str, payload: bytes) -> _Parsed | None:
        where = topics.parse_device_topic(topic)
        model_type = {"state": ReportedState, "evt": Event, "tele": Telemetry}.get(
            where.channel if where else ""
        )
        if where is None or model_type is None:
            self.stats.rejected += 1
            log.warning("rejected message on unexpected topic %s", topic)
            return None
        if not payload:  # a cleared retained message
            return None
        try:
            model = model_type.model_validate_json(payload)
        except ValidationError as exc:
            self.stats.rejected += 1
            log.warning("rejected malformed %s from %s: %s", where.channel, where.uid,
                        exc.errors()[0].get("msg"))
            return None
        return _Parsed(where.uid, where.channel, model)

    def _store(self, parsed: list[_Parsed]) -> None:
        """One transaction per batch, with set-based reads and one bulk insert of events.

        Per-row ORM round trips capped ingest at a few hundred messages/s; this keeps
        it at thousands (see `communecast bench ingest`).
        """
        now = datetime.now(UTC)
        with self._db.session() as s, s.no_autoflush:
            self._resolve_uids(s, {p.uid for p in parsed})
            ids = {self._device_ids[p.uid] for p in parsed if p.uid in self._device_ids}
            devices = {d.id: d for d in s.scalars(select(Device).where(Device.id.in_(ids)))} if ids else {}
            events = [p.model.id for p in parsed if isinstance(p.model, Event)]
            known_q = select(DeviceEvent.id).where(DeviceEvent.id.in_(events))
            known = set(s.scalars(known_q)) if events else set()
            rows: list[dict[str, object]] = []
            to_apply: list[tuple[int, Event]] = []
            for p in parsed:
                device = devices.get(self._device_ids.get(p.uid, -1))
                if device is None:
                    self.stats.unknown_device += 1
                    log.warning("message from unknown station %s ignored", p.uid)
                    continue
                if device.last_seen is None or now - device.last_seen > LAST_SEEN_RESOLUTION:
                    device.last_seen = now  # coarse on purpose: saves an UPDATE per message
                if isinstance(p.model, ReportedState):
                    _apply_state(device, p.model)
                elif isinstance(p.model, Telemetry):
                    device.reported = {**(device.reported or {}),
                                       "telemetry": p.model.model_dump(mode="json")}
                else:
                    ev = p.model
                    if ev.id in known:
                        self.stats.duplicates += 1
                        continue
                    known.add(ev.id)
                    rows.append({
                        "id": ev.id, "device_id": device.id, "kind": ev.kind.value, "ts": ev.ts,
                        "received_at": now, "ref": ev.ref, "item_id": ev.item_id,
                        "body": ev.model_dump(mode="json"),
                    })  # fmt: skip
                    to_apply.append((device.id, ev))
                    self.stats.by_kind[ev.kind.value] = self.stats.by_kind.get(ev.kind.value, 0) + 1
            if rows:
                s.execute(insert(DeviceEvent), rows)
                self.stats.stored_events += len(rows)
            _apply_deliveries(s, [(d, e) for d, e in to_apply if e.kind in DELIVERY_EVENTS])
            _apply_play_log(s, [(d, e) for d, e in to_apply if e.kind in STATUS_BY_EVENT])

    def _resolve_uids(self, s: Session, uids: set[str]) -> None:
        missing = uids - self._device_ids.keys()
        if missing:
            query = select(Device.id, Device.uid).where(Device.uid.in_(missing))
            for dev_id, uid in s.execute(query):
                self._device_ids[uid] = dev_id


def _apply_state(device: Device, state: ReportedState) -> None:
    device.online = state.online
    device.last_seen = datetime.now(UTC)
    device.reported = {**(device.reported or {}), **state.model_dump(mode="json", exclude_none=True)}


def _apply_deliveries(s: Session, events: list[tuple[int, Event]]) -> None:
    """Acks and rejections mark the deliveries they name (one query for the whole batch)."""
    wanted: dict[tuple[int, str], Event] = {}
    for device_id, ev in events:
        for item in ev.detail.get("items") or ([ev.item_id] if ev.item_id else []):
            wanted[(device_id, str(item))] = ev
    if not wanted:
        return
    query = select(Delivery).where(tuple_(Delivery.device_id, Delivery.item_id).in_(list(wanted)))
    for delivery in s.scalars(query):
        ev = wanted[(delivery.device_id, delivery.item_id)]
        if ev.kind is EventKind.ACK and delivery.state != "acked":
            delivery.state, delivery.acked_at = "acked", ev.ts
        elif ev.kind is EventKind.REJECTED:
            delivery.state, delivery.detail = "rejected", ev.reason


def _apply_play_log(s: Session, events: list[tuple[int, Event]]) -> None:
    """Proof of play: one row per (station, item); a final status never goes back."""
    keys = {(d, ev.item_id) for d, ev in events if ev.item_id}
    if not keys:
        return
    query = select(PlayLog).where(tuple_(PlayLog.device_id, PlayLog.item_id).in_(list(keys)))
    rows = {(r.device_id, r.item_id): r for r in s.scalars(query)}
    for device_id, ev in events:
        if not ev.item_id:
            continue
        status = STATUS_BY_EVENT[ev.kind]
        row = rows.get((device_id, ev.item_id))
        if row is None:
            row = PlayLog(device_id=device_id, item_id=ev.item_id, broadcast_id=ev.broadcast_id,
                          status=status)
            s.add(row)
            rows[(device_id, ev.item_id)] = row
        elif row.status in FINAL and status in ("playing", "missed"):
            continue
        row.status = status
        row.updated_at = datetime.now(UTC)
        started = ev.detail.get("started_at")
        if started:
            row.started_at = datetime.fromtimestamp(float(started), UTC)
        finished = ev.detail.get("finished_at")
        if finished:
            row.finished_at = datetime.fromtimestamp(float(finished), UTC)
        if "start_error_ms" in ev.detail:
            row.start_error_ms = float(ev.detail["start_error_ms"])
        if ev.reason:
            row.reason = ev.reason
