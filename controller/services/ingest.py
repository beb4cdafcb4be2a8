"""Everything stations say (state, events, telemetry) lands here, in batches.

Messages are queued by the MQTT handler (a whole socket read at a time) and written by
one worker in one transaction per batch, in a thread, while the next batch is parsed.
Events are stored once by id, so a QoS 1 redelivery or an outbox replay after
reconnection never doubles a play-log entry. After each commit the stations are told which
of their events are stored (`Receipts`): only then do they forget them, so the messages this
process acknowledged to the broker and holds in memory are not the only copy (a kill -9
before the commit loses nothing, the stations send them again). A message that does not
parse is counted and logged, never stored half-way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import bindparam, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from controller.db.models import Broadcast, Delivery, Device, DeviceEvent, PlayLog
from controller.db.session import Database
from controller.db.statuses import BroadcastStatus, DeliveryState, PlayStatus
from controller.services import diagnostics as ops
from controller.services import dispatch, metrics, proof_of_play, telemetry
from mqtt_adapter import Message
from protocol import topics
from protocol.limits import EVENT_DETAIL_MAX_BYTES, EVENT_REASON_MAX_CHARS, TRUNCATED_MARK
from protocol.messages import Event, EventKind, RejectReason, ReportedState, Telemetry

log = logging.getLogger(__name__)
# A station that reports having applied a newer desired-state version than the database
# knows (the controller was restored from an older backup) moves the count up to it, below
# this bound (a 32-bit INTEGER column).
MAX_VERSION = 2**31 - 1024

MAX_BATCH = 1000
PARSED_AHEAD = 2  # parsed batches waiting for the writer; beyond that parsing waits (never drops)
# Statuses an agent reports as final; 'missed' written by the controller may still be
# corrected by a late proof of play, but a final status never goes back to 'playing'.
FINAL = {PlayStatus.PLAYED, PlayStatus.INTERRUPTED, PlayStatus.FAILED}
LAST_SEEN_RESOLUTION = timedelta(seconds=2)
RESEND_WINDOW = timedelta(hours=1)  # see _unacknowledged
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DELIVERY_EVENTS = (EventKind.ACK, EventKind.REJECTED)
STATUS_BY_EVENT = {
    EventKind.PLAY_STARTED: PlayStatus.PLAYING,
    EventKind.PLAY_FINISHED: PlayStatus.PLAYED,
    EventKind.INTERRUPTED: PlayStatus.INTERRUPTED,
    EventKind.PLAY_FAILED: PlayStatus.FAILED,
    EventKind.MISSED: PlayStatus.MISSED,
}


@dataclass
class IngestStats:
    received: int = 0
    stored_events: int = 0
    duplicates: int = 0
    rejected: int = 0
    unknown_device: int = 0
    refused_play: int = 0  # proof of play for an item never delivered to that station
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _EventRow:
    """One device_events row to insert; `body` is the event as the station sent it (capped)."""

    id: str
    device_id: int
    kind: str
    ts: datetime
    received_at: datetime
    ref: str | None
    item_id: str | None
    body: Event

    def values(self) -> dict[str, object]:
        return {"id": self.id, "device_id": self.device_id, "kind": self.kind, "ts": self.ts,
                "received_at": self.received_at, "ref": self.ref, "item_id": self.item_id,
                "body": self.body.model_dump(mode="json")}  # fmt: skip


_EVENT_ROWS_JSON = TypeAdapter(list[_EventRow])


@dataclass(slots=True)
class _Parsed:
    uid: str
    channel: str
    model: ReportedState | Event | Telemetry


_MODELS: dict[str, type[ReportedState | Event | Telemetry]] = {
    "state": ReportedState, "evt": Event, "tele": Telemetry,
}  # fmt: skip


AfterStore = Callable[[list[tuple[str, Telemetry]], list[tuple[str, Event]]], None]
PlayLogHook = Callable[[Session, list[PlayLog]], object]
# Given, after each commit, the ids of the events now stored, by station uid (controller/mqtt/receipts.py).
Receipts = Callable[[dict[str, list[str]]], None]


@dataclass
class Stored:
    """What one committed batch did with its events."""

    refused: set[str] = field(default_factory=set)  # play events stored but not as proof of play
    by_station: dict[str, list[str]] = field(default_factory=dict)  # stored now or before, by uid

    def merge(self, other: Stored) -> None:
        self.refused |= other.refused
        for uid, ids in other.by_station.items():
            self.by_station.setdefault(uid, []).extend(ids)


class Ingest:
    def __init__(
        self, db: Database, *, after_store: AfterStore | None = None,
        play_log_hook: PlayLogHook | None = None, receipts: Receipts | None = None,
    ) -> None:
        """`after_store`: given each stored batch (the alarm engine, docs/health.md).
        `play_log_hook`: queues reported play logs in the ingest's transaction (the provincial
        connector's outbox, docs/provincial.md). `receipts`: tells the stations what is stored
        (None: nobody is told, stations send again after their wait). All fixed at construction."""
        self._db = db
        self._queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        self.stats = IngestStats()
        self._device_ids: dict[str, int] = {}
        # When this process last wrote each station's last_seen (it is coarse on purpose).
        self._last_seen: dict[int, datetime] = {}
        self.processed = asyncio.Event()
        # Held while a batch is written. Other bulk writers of this process take it too
        # (emergency.start's 10,000 delivery rows): on SQLite a writer that waits in the busy
        # handler (sleeps up to 100 ms between tries) lost to back-to-back ingest batches for
        # seconds; this lock serves them in turn.
        self.write_lock = asyncio.Lock()
        self.after_store = after_store
        self.play_log_hook = play_log_hook
        self._receipts = receipts

    async def handle(self, topic: str, payload: bytes) -> None:
        self.handle_batch([Message(topic, payload)])

    def handle_batch(self, messages: list[Message]) -> None:
        """The MQTT bus's fast path: everything one socket read brought, in one queue item."""
        self.stats.received += len(messages)
        self._queue.put_nowait(messages)

    async def run(self) -> None:
        """Parse batch k+1 on the event loop while batch k is written in a thread.

        The hand-over queue is bounded, so when the database is the limit parsing waits and
        messages wait (acknowledged, in memory) in the input queue: nothing is dropped."""
        parsed_q: asyncio.Queue[list[_Parsed]] = asyncio.Queue(maxsize=PARSED_AHEAD)
        writer = asyncio.create_task(self._write_loop(parsed_q), name="ingest-writer")
        try:
            while True:
                batch = await self._queue.get()
                while len(batch) < MAX_BATCH and not self._queue.empty():
                    batch = batch + self._queue.get_nowait()
                parsed = [p for p in (self.parse(m.topic, m.payload) for m in batch) if p is not None]
                if parsed:
                    await parsed_q.put(parsed)
                elif parsed_q.empty():
                    self.processed.set()
        finally:
            writer.cancel()

    async def _write_loop(self, parsed_q: asyncio.Queue[list[_Parsed]]) -> None:
        while True:
            parsed = await parsed_q.get()
            metrics.count_channels(p.channel for p in parsed)
            started = time.perf_counter()
            stored = Stored()
            try:
                async with self.write_lock:
                    stored = await asyncio.to_thread(self.store, parsed)
            except Exception:
                log.exception("ingest batch failed; storing one by one")
                for p in parsed:
                    try:
                        stored.merge(await asyncio.to_thread(self.store, [p]))
                    except Exception:
                        self.stats.rejected += 1
                        log.exception("dropping unstorable message from %s", p.uid)
            metrics.INGEST_BATCH.observe(time.perf_counter() - started)
            refused = stored.refused
            if self._receipts is not None and stored.by_station:
                try:
                    self._receipts(stored.by_station)
                except Exception:
                    log.exception("could not send event receipts (stations will send again)")
            if self.after_store is not None:
                try:
                    kept = [p for p in parsed if not (isinstance(p.model, Event) and p.model.id in refused)]
                    self.after_store(
                        [(p.uid, p.model) for p in kept if isinstance(p.model, Telemetry)],
                        [(p.uid, p.model) for p in kept if isinstance(p.model, Event)],
                    )
                except Exception:
                    log.exception("after-store hook failed")
            if parsed_q.empty() and self._queue.empty():
                self.processed.set()

    def parse(self, topic: str, payload: bytes) -> _Parsed | None:
        """One message checked against its topic's model (None: rejected or a cleared retain);
        public so tests feed exactly what the bus would, without a broker."""
        where = topics.parse_device_topic(topic)
        model_type = _MODELS.get(where.channel) if where else None
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
        if isinstance(model, Event):
            model = _cap_free_text(where.uid, model, len(payload))
        return _Parsed(where.uid, where.channel, model)

    def store(self, parsed: list[_Parsed]) -> Stored:
        """One transaction per batch, with set-based reads and one bulk insert of events.

        Per-row ORM round trips capped ingest at a few hundred messages/s; this keeps
        it at thousands (see `communecast bench ingest`). Returns the event ids now stored
        by station (to receipt once committed) and those of the play events refused
        (`_refuse_undelivered`): stored as events, not as proof of play.
        """
        now = datetime.now(UTC)
        with self._db.session() as s, s.no_autoflush:
            self.resolve_uids(s, {p.uid for p in parsed})
            ids = {self._device_ids[p.uid] for p in parsed if p.uid in self._device_ids}
            pg = s.get_bind().dialect.name == "postgresql"
            # Ids only: loading whole Device rows (JSON and all) for every event was the main cost.
            if not ids:
                live: set[object] = set()
            elif pg:
                live = _pg_ids(s, "SELECT id FROM devices WHERE id = ANY(%s)", list(ids))
            else:
                live = set(s.scalars(select(Device.id).where(Device.id.in_(ids))))
            events = [p.model.id for p in parsed if isinstance(p.model, Event)]
            # PostgreSQL: the insert itself skips ids already stored (ON CONFLICT), see below.
            known_q = select(DeviceEvent.id).where(DeviceEvent.id.in_(events))
            known = set(s.scalars(known_q)) if events and not pg else set()
            rows: list[_EventRow] = []
            samples: list[dict[str, object]] = []
            to_apply: list[tuple[int, Event]] = []
            # Coalesced per station: one merge into Device.reported per batch (in arrival order).
            patches: dict[int, dict[str, object]] = {}
            online: dict[int, bool] = {}
            seen: set[int] = set()
            by_station: dict[str, list[str]] = {}  # stored by this batch, or already (a resend)
            for p in parsed:
                device_id = self._device_ids.get(p.uid, -1)
                if device_id not in live:
                    self.stats.unknown_device += 1
                    log.warning("message from unknown station %s ignored", p.uid)
                    continue
                seen.add(device_id)
                if isinstance(p.model, ReportedState):
                    patch = patches.setdefault(device_id, {})
                    patch.update(p.model.model_dump(mode="json", exclude_none=True))
                    online[device_id] = p.model.online
                elif isinstance(p.model, Telemetry):
                    patches.setdefault(device_id, {})["telemetry"] = p.model.model_dump(mode="json")
                    samples.append(telemetry.sample_row(device_id, p.model))
                else:
                    ev = p.model
                    by_station.setdefault(p.uid, []).append(ev.id)
                    if ev.id in known:
                        self.stats.duplicates += 1
                        continue
                    known.add(ev.id)
                    rows.append(_EventRow(ev.id, device_id, ev.kind.value, ev.ts, now, ev.ref, ev.item_id,
                                          ev))
                    to_apply.append((device_id, ev))
            # Kept in the station's event log (what it said), never in the play log or the alarms.
            refused = self._refuse_undelivered(s, parsed, to_apply)
            if patches:  # the newest state/telemetry per station; last_seen rides along
                behind: list[int] = []
                for device in s.scalars(select(Device).where(Device.id.in_(patches))):
                    device.reported = {**(device.reported or {}), **patches[device.id]}
                    if device.id in online:
                        device.online = online[device.id]
                    device.last_seen = now
                    applied = patches[device.id].get("desired_version")
                    if isinstance(applied, int) and device.desired_version < applied < MAX_VERSION:
                        behind.append(device.id)
                        device.desired_version = applied
                if behind:  # restored from a backup: publish above what the stations hold
                    log.warning("%d station(s) hold a newer desired state than this database "
                                "(restored from a backup?): publishing above it", len(behind))
                    dispatch.stations_changed(s, behind)
            back = [d for d, on in online.items() if on]
            if back:  # a station (re)connected: what it may have missed meanwhile is sent again
                dispatch.stations_changed(s, _unacknowledged(s, back, now))
            stale = [d for d in seen - patches.keys()
                     if now - self._last_seen.get(d, _EPOCH) > LAST_SEEN_RESOLUTION]  # fmt: skip
            if stale and pg:  # coarse on purpose: one set-based UPDATE per batch, not one per message
                s.connection().exec_driver_sql(
                    "UPDATE devices SET last_seen = %s WHERE id = ANY(%s) "
                    "AND (last_seen IS NULL OR last_seen < %s)", (now, stale, now))  # fmt: skip
            elif stale:
                s.execute(update(Device).where(Device.id.in_(stale))
                          .where(or_(Device.last_seen.is_(None), Device.last_seen < now))
                          .values(last_seen=now).execution_options(synchronize_session=False))  # fmt: skip
            if rows and pg:
                stored = _pg_insert_events(s, rows)
                self.stats.duplicates += len(rows) - len(stored)
                if len(stored) < len(rows):  # stored meanwhile (QoS 1 redelivery to a replica)
                    to_apply = [(d, e) for d, e in to_apply if e.id in stored]
                self.stats.stored_events += len(stored)
            elif rows:
                s.execute(insert(DeviceEvent), [r.values() for r in rows])
                self.stats.stored_events += len(rows)
            for _, ev in to_apply:
                self.stats.by_kind[ev.kind.value] = self.stats.by_kind.get(ev.kind.value, 0) + 1
            telemetry.store_samples(s, samples)  # one insert for the batch (docs/health.md)
            _apply_deliveries(s, [(d, e) for d, e in to_apply
                                  if e.kind in DELIVERY_EVENTS or e.ready_at is not None], pg=pg)
            unreadable = {d for d, e in to_apply
                          if e.kind is EventKind.REJECTED and unreadable_command(e.reason, e.detail)}
            if unreadable:  # e.g. an older agent and audio inside a PLAY: the desired state carries it
                dispatch.stations_changed(s, unreadable)
            plays = [(d, e) for d, e in to_apply if e.kind in STATUS_BY_EVENT and e.id not in refused]
            changed = _apply_play_log(s, plays, pg=pg)
            if changed and self.play_log_hook is not None:
                self.play_log_hook(s, _play_log_rows(s, changed))
            # Diagnostic results and update outcomes (docs/operations.md).
            ops.apply_events(s, [(d, e) for d, e in to_apply if e.kind in ops.OPS_EVENTS])
        for d in seen:  # committed: remember when last_seen was written
            self._last_seen[d] = now
        return Stored(refused, by_station)

    def _refuse_undelivered(
        self, s: Session, parsed: list[_Parsed], events: list[tuple[int, Event]]
    ) -> set[str]:
        """Ids of the play events naming an item never delivered to their station (another
        station's item, an invented one): a station's word is proof of play only for what
        the controller gave it (controller/services/proof_of_play.py)."""
        play = [(d, e) for d, e in events if e.kind in STATUS_BY_EVENT and e.item_id]
        if not play:
            return set()
        allowed = proof_of_play.delivered(s, {(d, e.item_id) for d, e in play if e.item_id})
        refused = {e.id for d, e in play if (d, e.item_id) not in allowed}
        if refused:
            uid_of = {p.model.id: p.uid for p in parsed if isinstance(p.model, Event)}
            for d, e in play:
                if e.id in refused:
                    log.warning("refused %s from %s for item %s: never delivered to that station",
                                e.kind.value, uid_of.get(e.id, d), e.item_id)  # fmt: skip
            self.stats.refused_play += len(refused)
            metrics.PLAY_EVENTS_REFUSED.inc(len(refused))
        return refused

    def resolve_uids(self, s: Session, uids: set[str]) -> None:
        """Learn the device ids of these station uids (cached): the acks benchmark warms the
        cache first, as a running controller has from the stations' telemetry."""
        missing = uids - self._device_ids.keys()
        if missing:
            query = select(Device.id, Device.uid).where(Device.uid.in_(missing))
            for dev_id, uid in s.execute(query):
                self._device_ids[uid] = dev_id


# Detail values kept when a detail is cut: what the play log and ops read are short scalars.
_KEPT_STRING_CHARS = 200


# Re-serialised with json.dumps' defaults (\uXXXX escapes, floats written out in full), a
# value takes at most 4.5 times the bytes it took in its JSON message ("1e15" -> 18 bytes).
_REENCODED_MAX_GROWTH = 6


def _cap_free_text(uid: str, ev: Event, payload_bytes: int) -> Event:
    """The event with its reason and detail cut to protocol/limits.py, with a marker.

    The broker already refuses packets over MAX_PACKET_SIZE; this keeps what fits in one
    from filling the events table and the reports with a station's megabyte of text. A
    message too small to hold an oversized detail is not measured: json.dumps of every
    event's detail was ~12 % of the controller's CPU in `communecast bench ingest`."""
    if ev.reason is not None and len(ev.reason) > EVENT_REASON_MAX_CHARS:
        log.warning("event %s from %s: reason of %d characters cut", ev.id, uid, len(ev.reason))
        metrics.EVENT_FIELDS_TRUNCATED.labels("reason").inc()
        reason = ev.reason[: EVENT_REASON_MAX_CHARS - len(TRUNCATED_MARK)] + TRUNCATED_MARK
        ev = ev.model_copy(update={"reason": reason})
    if payload_bytes * _REENCODED_MAX_GROWTH <= EVENT_DETAIL_MAX_BYTES:
        return ev
    size = len(json.dumps(ev.detail, separators=(",", ":"), default=str).encode())
    if size <= EVENT_DETAIL_MAX_BYTES:
        return ev
    log.warning("event %s from %s: detail of %d bytes cut", ev.id, uid, size)
    metrics.EVENT_FIELDS_TRUNCATED.labels("detail").inc()
    kept: dict[str, object] = {"truncated": TRUNCATED_MARK, "original_bytes": size}
    for key, value in list(ev.detail.items())[:50]:
        if value is None or isinstance(value, bool | int | float):
            kept[str(key)[:_KEPT_STRING_CHARS]] = value
        elif isinstance(value, str):
            cut = value if len(value) <= _KEPT_STRING_CHARS else value[:_KEPT_STRING_CHARS] + TRUNCATED_MARK
            kept[str(key)[:_KEPT_STRING_CHARS]] = cut
    return ev.model_copy(update={"detail": kept})


def _pg_ids(s: Session, sql: str, values: list[object]) -> set[object]:
    """One array parameter instead of an IN list of 1,000 (SQLAlchemy expands and psycopg
    converts each bound value: ~20% of the ingest's CPU at 5,000 msgs/s)."""
    return {row[0] for row in s.connection().exec_driver_sql(sql, (values,))}


_PG_INSERT_EVENTS = (
    "INSERT INTO device_events (id, device_id, kind, ts, received_at, ref, item_id, body) "
    "SELECT id, device_id, kind, ts, received_at, ref, item_id, body FROM json_to_recordset(%s::json) "
    "AS x(id varchar, device_id int, kind varchar, ts timestamptz, received_at timestamptz, "
    "ref varchar, item_id varchar, body json) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)


def _pg_insert_events(s: Session, rows: list[_EventRow]) -> set[object]:
    """All of a batch's events in one statement with one JSON parameter, skipping ids stored
    already (even by another replica meanwhile); returns the ids it stored.

    The ORM bulk insert ran one INSERT per row through psycopg's pipeline (~40% of the CPU);
    column arrays were next (psycopg escapes every JSON body for the text array format). The
    parameter is written by pydantic in one call: model_dump + json.dumps of each row was
    ~17 % of the controller's CPU at 6,000 events/s (`communecast bench ingest`)."""
    doc = _EVENT_ROWS_JSON.dump_json(rows).decode()
    return {row[0] for row in s.connection().exec_driver_sql(_PG_INSERT_EVENTS, (doc,))}


_PG_ACK_DELIVERIES = (
    "UPDATE deliveries AS d SET state = 'acked', acked_at = x.ts "
    "FROM (SELECT d, i, min(ts) AS ts "
    "FROM json_to_recordset(%s::json) AS r(d int, i varchar, ts timestamptz) GROUP BY d, i) AS x "
    "WHERE d.device_id = x.d AND d.item_id = x.i AND d.state != 'acked'"
)


_PG_READY_DELIVERIES = (
    "UPDATE deliveries AS d SET ready_at = x.ts "
    "FROM (SELECT d, i, min(ts) AS ts "
    "FROM json_to_recordset(%s::json) AS r(d int, i varchar, ts timestamptz) GROUP BY d, i) AS x "
    "WHERE d.device_id = x.d AND d.item_id = x.i AND d.ready_at IS NULL"
)


def unreadable_command(reason: object, detail: object) -> bool:
    """A `rejected` event says the station could not read a command (`malformed` on a cmd topic:
    an agent older than a field the command carries, e.g. audio inside an emergency PLAY). Its
    desired state is sent again: it carries the same items by reference, in the form that agent
    reads (docs/protocol.md, "Compatibility within v1"). Never for a refused desired state: that
    would only repeat it. (emergency._after_publish covers a refusal stored before the rows.)"""
    topic = detail.get("topic") if isinstance(detail, dict) else None
    return reason == RejectReason.MALFORMED.value and isinstance(topic, str) and topic.endswith("/cmd")


def _unacknowledged(s: Session, device_ids: list[int], now: datetime) -> set[int]:
    """Of these stations, those holding an unacknowledged delivery of a broadcast still to come
    (or just past): their desired state, which carries it (broadcasts.horizon_items), is
    published again.

    An emergency goes out once, as a PLAY on a group topic (services/emergency.py): a station
    that was not subscribed at that instant (reconnecting after a broker restart, its session
    lost with the broker's memory) never got it, and nothing told it again — it neither played
    nor reported, and the controller showed it `pending` for good (found by `communecast bench
    chaos`; tests/system/test_chaos_regressions.py). Its state on (re)connecting (online=True)
    is the moment to tell it again; once it acknowledges that desired state the delivery is
    acked and this finds nothing more to send. Only broadcasts that started at most
    RESEND_WINDOW ago: older ones the desired state no longer carries (broadcasts.KEEP_PAST), so
    sending it again would be acknowledged without them, at every state the station reports."""
    return set(s.scalars(
        select(Delivery.device_id).distinct()
        .join(Broadcast, Broadcast.id == Delivery.broadcast_id)
        .where(Delivery.device_id.in_(device_ids), Delivery.state == DeliveryState.PENDING,
               Broadcast.status == BroadcastStatus.SCHEDULED, Broadcast.start_at >= now - RESEND_WINDOW)
    ))


def _apply_deliveries(s: Session, events: list[tuple[int, Event]], *, pg: bool) -> None:
    """Acks and rejections mark the deliveries they name (and a `ready_at` — carried by a
    play_started — sets the delivery's readiness, once), in the database (loading and
    flushing a Delivery object per ack was a third of the ingest's time for the 10,000 acks
    of one emergency). PostgreSQL: all of a batch's acks in one UPDATE ... FROM one JSON
    parameter (an executemany of 1,000 UPDATEs spent 0.2 s per batch waiting on the server,
    `communecast bench acks`); SQLite, in process: one executemany UPDATE."""
    acks: list[dict[str, object]] = []
    rejections: list[dict[str, object]] = []
    readies: list[dict[str, object]] = []  # play_started with `ready_at`: the lead is learnt from it
    for device_id, ev in events:
        if ev.ready_at is not None and ev.item_id:
            readies.append({"d": device_id, "i": ev.item_id, "ts": ev.ready_at})
        if ev.kind not in DELIVERY_EVENTS:
            continue
        for item in ev.detail.get("items") or ([ev.item_id] if ev.item_id else []):
            if ev.kind is EventKind.ACK:
                acks.append({"d": device_id, "i": str(item), "ts": ev.ts})
            elif ev.kind is EventKind.REJECTED:
                rejections.append({"d": device_id, "i": str(item), "why": ev.reason})
    t = Delivery.__table__
    named = (t.c.device_id == bindparam("d")) & (t.c.item_id == bindparam("i"))
    if acks and pg:
        doc = json.dumps([{**a, "ts": a["ts"].isoformat()} for a in acks], separators=(",", ":"))  # type: ignore[attr-defined]
        s.connection().exec_driver_sql(_PG_ACK_DELIVERIES, (doc,))
    elif acks:
        acks.sort(key=lambda a: a["ts"])  # type: ignore[arg-type,return-value]  # the first ack's time wins
        s.connection().execute(
            update(t).where(named, t.c.state != DeliveryState.ACKED)
            .values(state=DeliveryState.ACKED,
                    acked_at=bindparam("ts", type_=t.c.acked_at.type)), acks)  # fmt: skip
    if rejections:
        s.connection().execute(
            update(t).where(named).values(state=DeliveryState.REJECTED, detail=bindparam("why")), rejections)
    if readies and pg:
        doc = json.dumps([{**r, "ts": r["ts"].isoformat()} for r in readies], separators=(",", ":"))  # type: ignore[attr-defined]
        s.connection().exec_driver_sql(_PG_READY_DELIVERIES, (doc,))
    elif readies:
        readies.sort(key=lambda r: r["ts"])  # type: ignore[arg-type,return-value]  # the first one wins
        s.connection().execute(
            update(t).where(named, t.c.ready_at.is_(None))
            .values(ready_at=bindparam("ts", type_=t.c.ready_at.type)), readies)  # fmt: skip


_PG_PLAY_LOG_STATUS = (
    "SELECT p.device_id, p.item_id, p.status FROM play_log AS p "
    "JOIN json_to_recordset(%s::json) AS k(d int, i varchar) ON p.device_id = k.d AND p.item_id = k.i"
)
_PG_UPSERT_PLAY_LOG = (
    "INSERT INTO play_log (device_id, item_id, broadcast_id, status, started_at, finished_at, "
    "start_error_ms, reason, updated_at) "
    "SELECT device_id, item_id, broadcast_id, status, started_at, finished_at, start_error_ms, reason, "
    "updated_at FROM json_to_recordset(%s::json) AS x(device_id int, item_id varchar, broadcast_id int, "
    "status varchar, started_at timestamptz, finished_at timestamptz, start_error_ms float8, reason text, "
    "updated_at timestamptz) "
    "ON CONFLICT (device_id, item_id) DO UPDATE SET status = EXCLUDED.status, "
    "updated_at = EXCLUDED.updated_at, "
    "started_at = COALESCE(EXCLUDED.started_at, play_log.started_at), "
    "finished_at = COALESCE(EXCLUDED.finished_at, play_log.finished_at), "
    "start_error_ms = COALESCE(EXCLUDED.start_error_ms, play_log.start_error_ms), "
    "reason = COALESCE(EXCLUDED.reason, play_log.reason)"
)
# Columns an event may leave out: the row keeps what an earlier event set.
_PLAY_LOG_KEEP = ("started_at", "finished_at", "start_error_ms", "reason")


def _apply_play_log(s: Session, events: list[tuple[int, Event]], *, pg: bool) -> list[tuple[int, str]]:
    """Proof of play: one row per (station, item); a final status never goes back.

    The batch's events are folded per row here, on the statuses read in one query, and written
    in one upsert (ORM objects for 1,000 rows — the tuple IN read, the flush — held PostgreSQL
    at ~4,000 events/s: `communecast bench acks`). Returns the (station, item) of the rows
    created or whose status changed."""
    keys = list({(d, ev.item_id) for d, ev in events if ev.item_id})
    if not keys:
        return []
    t = PlayLog.__table__
    if pg:
        doc = json.dumps([{"d": d, "i": i} for d, i in keys], separators=(",", ":"))
        found = s.connection().exec_driver_sql(_PG_PLAY_LOG_STATUS, (doc,))
    else:
        found = s.connection().execute(select(t.c.device_id, t.c.item_id, t.c.status)
                                       .where(tuple_(t.c.device_id, t.c.item_id).in_(keys)))
    status: dict[tuple[int, str], str] = {(d, i): st for d, i, st in found}
    rows: dict[tuple[int, str], dict[str, object]] = {}
    changed: dict[tuple[int, str], None] = {}
    now = datetime.now(UTC)
    for device_id, ev in events:
        if not ev.item_id:
            continue
        key, new = (device_id, ev.item_id), STATUS_BY_EVENT[ev.kind]
        old = status.get(key)
        if old in FINAL and new in (PlayStatus.PLAYING, PlayStatus.MISSED):
            continue
        if old != new:
            changed[key] = None
        status[key] = new
        row = rows.setdefault(key, {"device_id": device_id, "item_id": ev.item_id,
                                    "broadcast_id": ev.broadcast_id, **dict.fromkeys(_PLAY_LOG_KEEP)})
        row["status"], row["updated_at"] = new, now
        started, finished = ev.detail.get("started_at"), ev.detail.get("finished_at")
        if started:
            row["started_at"] = datetime.fromtimestamp(float(started), UTC)
        if finished:
            row["finished_at"] = datetime.fromtimestamp(float(finished), UTC)
        if "start_error_ms" in ev.detail:
            row["start_error_ms"] = float(ev.detail["start_error_ms"])
        if ev.reason:
            row["reason"] = ev.reason
    if not rows:
        return []
    if pg:
        doc = json.dumps([{k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
                          for r in rows.values()], separators=(",", ":"))  # fmt: skip
        s.connection().exec_driver_sql(_PG_UPSERT_PLAY_LOG, (doc,))
    else:
        upsert = sqlite_insert(t)
        s.connection().execute(upsert.on_conflict_do_update(
            index_elements=[t.c.device_id, t.c.item_id],
            set_={"status": upsert.excluded.status, "updated_at": upsert.excluded.updated_at}
            | {c: func.coalesce(upsert.excluded[c], t.c[c]) for c in _PLAY_LOG_KEEP}), list(rows.values()))
    return list(changed)


def _play_log_rows(s: Session, keys: list[tuple[int, str]]) -> list[PlayLog]:
    """The rows themselves, for a hook that wants them (the provincial connector)."""
    return list(s.scalars(select(PlayLog).where(tuple_(PlayLog.device_id, PlayLog.item_id).in_(keys))))
