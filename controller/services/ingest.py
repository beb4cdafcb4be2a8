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
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import select
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
        with self._db.session() as s:
            self._resolve_uids(s, {p.uid for p in parsed})
            events = [p for p in parsed if isinstance(p.model, Event)]
            known = set(
                s.scalars(
                    select(DeviceEvent.id).where(
                        DeviceEvent.id.in_([p.model.id for p in events])  # type: ignore[union-attr]
                    )
                )
            ) if events else set()
            play_rows: dict[tuple[int, str], PlayLog] = {}
            for p in parsed:
                device_id = self._device_ids.get(p.uid)
                if device_id is None:
                    self.stats.unknown_device += 1
                    log.warning("message from unknown station %s ignored", p.uid)
                    continue
                device = s.get(Device, device_id)
                assert device is not None
                if isinstance(p.model, ReportedState):
                    _apply_state(device, p.model)
                elif isinstance(p.model, Telemetry):
                    device.last_seen = datetime.now(UTC)
                    device.reported = {**(device.reported or {}),
                                       "telemetry": p.model.model_dump(mode="json")}
                else:
                    ev = p.model
                    if ev.id in known:
                        self.stats.duplicates += 1
                        continue
                    known.add(ev.id)
                    s.add(DeviceEvent(
                        id=ev.id, device_id=device_id, kind=ev.kind.value, ts=ev.ts,
                        ref=ev.ref, item_id=ev.item_id, body=ev.model_dump(mode="json"),
                    ))  # fmt: skip
                    device.last_seen = datetime.now(UTC)
                    _apply_event(s, device_id, ev, play_rows)
                    self.stats.stored_events += 1
                    self.stats.by_kind[ev.kind.value] = self.stats.by_kind.get(ev.kind.value, 0) + 1

    def _resolve_uids(self, s: Session, uids: set[str]) -> None:
        missing = uids - self._device_ids.keys()
        if missing:
            for dev_id, uid in s.execute(select(Device.id, Device.uid).where(Device.uid.in_(missing))):
                self._device_ids[uid] = dev_id


def _apply_state(device: Device, state: ReportedState) -> None:
    device.online = state.online
    device.last_seen = datetime.now(UTC)
    device.reported = {**(device.reported or {}), **state.model_dump(mode="json", exclude_none=True)}


def _apply_event(
    s: Session, device_id: int, ev: Event, play_rows: dict[tuple[int, str], PlayLog]
) -> None:
    if ev.kind in (EventKind.ACK, EventKind.REJECTED):
        items = ev.detail.get("items") or ([ev.item_id] if ev.item_id else [])
        if not items:
            return
        for delivery in s.scalars(
            select(Delivery).where(Delivery.device_id == device_id, Delivery.item_id.in_(items))
        ):
            if ev.kind is EventKind.ACK and delivery.state != "acked":
                delivery.state, delivery.acked_at = "acked", ev.ts
            elif ev.kind is EventKind.REJECTED:
                delivery.state, delivery.detail = "rejected", ev.reason
        return
    status = STATUS_BY_EVENT.get(ev.kind)
    if status is None or not ev.item_id:
        return
    key = (device_id, ev.item_id)
    row = play_rows.get(key) or s.scalars(
        select(PlayLog).where(PlayLog.device_id == device_id, PlayLog.item_id == ev.item_id)
    ).first()
    if row is None:
        row = PlayLog(device_id=device_id, item_id=ev.item_id, broadcast_id=ev.broadcast_id,
                      status=status)
        s.add(row)
    elif row.status in FINAL and status in ("playing", "missed"):
        return
    play_rows[key] = row
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
