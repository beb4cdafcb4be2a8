"""Builds, signs and publishes each station's retained desired state.

The database is the truth, including which stations are 'dirty': anything that changes
what a station should do queues a dispatch row (controller/services/dispatch.py), and
one task — in the one replica holding the dispatch lease — publishes (so versions per
station are strictly increasing). A failed publish leaves the row, so it is retried when
the broker is back; a crashed replica leaves its rows to the next lease holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import set_committed_value

from controller.db.models import Device
from controller.db.models_dispatch import DispatchQueue
from controller.db.session import Database
from controller.mqtt.bus import MqttBus
from controller.services import dispatch, metrics
from controller.services.horizon import HorizonSources
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import CommandKind, DesiredState, ScheduleItem
from protocol.signing import Signer

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class Outgoing:
    device_id: int
    topic: str
    payload: bytes
    version: int


def build(
    session: Session, device_ids: list[int], signer: Signer, *, now: datetime, horizon: timedelta,
    sources: HorizonSources, max_bytes: int | None = None,
) -> list[Outgoing]:  # fmt: skip
    """Each station's signed desired state, with its version bumped in `session` (uncommitted).

    `sources`: what a horizon is made of (controller/horizon_sources.py `standard()`).

    `max_bytes` (the desired_state_max_bytes setting): a bigger state loses its farthest
    items (`_trimmed`); saves and approvals refuse what would need it (schedule_limits.py).

    Nothing is flushed while the items are gathered, so on SQLite the write lock is held
    only from the version bumps to the caller's commit, not for the whole build (the
    lease renewal writes meanwhile).
    """
    with session.no_autoflush:
        devices = list(session.scalars(
            select(Device).where(Device.id.in_(device_ids)).options(defer(Device.reported))
        ))  # fmt: skip
        items = sources.gather(session, devices, now=now, horizon=horizon)
        led_content = sources.led_content(session, [d.id for d in devices], now)  # LED boards only
    out: list[Outgoing] = []
    bumps: list[dict[str, int]] = []
    for device in devices:
        if device.retired_at is not None:
            continue
        version = device.desired_version + 1
        head = DesiredState(version=version, horizon_until=now + horizon, led=led_content.get(device.id))
        topic = topics.desired(device.uid)
        target = topics.target_of(topic)
        payload = _sealed(head, items[device.id], target, signer, now=now, ttl=horizon)
        if max_bytes is not None and len(payload) > max_bytes:
            payload = _trimmed(device.uid, head, items[device.id], target, signer, now=now, ttl=horizon,
                               max_bytes=max_bytes, size=len(payload))  # fmt: skip
        out.append(Outgoing(device.id, topic, payload, version))
        bumps.append({"b_id": device.id, "b_version": version})
    if bumps:  # one executemany instead of the unit of work over every Device object
        table = Device.__table__
        # Never down: ingest may have raised it meanwhile to what the station holds (a restore).
        bump = update(table).where(table.c.id == bindparam("b_id"),
                                   table.c.desired_version < bindparam("b_version"))
        session.execute(bump.values(desired_version=bindparam("b_version")), bumps)
        for device in devices:  # keep the loaded objects in step, without making them dirty
            if device.retired_at is None:
                set_committed_value(device, "desired_version", device.desired_version + 1)
    return out


_EMPTY_SCHEDULE = '"schedule":[]'
# Item JSON by item object (kept alive here, so an id is never reused while cached). The
# items of recurring schedules are shared by every station they target and across builds
# (schedule_horizon._EXPANDED), so each is serialized once per roll, not once per station.
_ITEM_JSON: dict[int, tuple[ScheduleItem, str]] = {}
_ITEM_JSON_MAX = 50_000


def clear_item_cache() -> None:
    """Forget every serialized item, as a controller start does (benchmarks time a cold roll)."""
    _ITEM_JSON.clear()


def _sealed(
    head: DesiredState, schedule: list[ScheduleItem], target: str, signer: Signer, *,
    now: datetime, ttl: timedelta,
) -> bytes:  # fmt: skip
    """What `SignedMessage.seal(Envelope.new(DESIRED_STATE, target, state.model_dump(mode="json")))`
    gives for `head` with `schedule`, byte for byte (tests/system/test_replicas_lease.py), but with
    each item's JSON made once and spliced in: serializing every item per station was most
    of the build (`communecast bench horizon`). Items are frozen models, so their JSON is too."""
    if len(_ITEM_JSON) > _ITEM_JSON_MAX:
        _ITEM_JSON.clear()
    parts = []
    for item in schedule:
        hit = _ITEM_JSON.get(id(item))
        if hit is None or hit[0] is not item:
            hit = _ITEM_JSON[id(item)] = (item, item.model_dump_json())
        parts.append(hit[1])
    env = Envelope.new(CommandKind.DESIRED_STATE, target, head.model_dump(mode="json"), ttl=ttl, now=now)
    before, found, after = env.model_dump_json().partition(_EMPTY_SCHEDULE)
    if not found or _EMPTY_SCHEDULE in after:  # cannot happen: quotes inside JSON strings are escaped
        raise ValueError("desired state: no unique empty schedule to fill")
    raw = f'{before}"schedule":[{",".join(parts)}]{after}'.encode()
    return SignedMessage.seal_bytes(raw, signer).to_bytes()


def _trimmed(
    uid: str, head: DesiredState, schedule: list[ScheduleItem], target: str, signer: Signer, *,
    now: datetime, ttl: timedelta, max_bytes: int, size: int,
) -> bytes:  # fmt: skip
    """The last line of defence against a state too big for the broker (protocol/limits.py):
    keep the earliest items (sorted by start) that fit; the rest come with a later roll."""
    keep = len(schedule)
    payload = b""
    while keep > 0:
        keep = min(keep - 1, keep * max_bytes // max(size, 1))
        payload = _sealed(head, schedule[:keep], target, signer, now=now, ttl=ttl)
        size = len(payload)
        if size <= max_bytes:
            break
    metrics.DESIRED_STATE_TRIMMED.inc()
    log.error("desired state of %s trimmed to %d of %d items (%d bytes, limit %d)",
              uid, keep, len(schedule), size, max_bytes)  # fmt: skip
    return payload


class DesiredStatePublisher:
    """Drains the durable dispatch queue while this replica holds the dispatch lease.

    Writes queue their stations with `dispatch.stations_changed(session, ids)`, in their
    own transaction, so a dispatch survives a crash of this process and is done by
    whichever replica holds the lease (controller/services/dispatch.py); every commit that
    queued rows wakes this publisher through `Database.dispatch_queued`, from worker
    threads (sync routes) as well as from the event loop. `mark_dirty(ids)` queues in a
    transaction of its own (start-up, the horizon roll).
    """

    POLL_S = 0.25  # how soon marks made by another replica are noticed

    def __init__(
        self, db: Database, bus: MqttBus, signer: Signer, horizon: timedelta, *, sources: HorizonSources,
        holder: str | None = None, lease_ttl: timedelta = timedelta(seconds=5), max_bytes: int | None = None,
    ) -> None:  # fmt: skip
        self._db = db
        self._sources = sources
        self._bus = bus
        self._signer = signer
        self._horizon = horizon
        self._max_bytes = max_bytes
        self.lease = dispatch.Lease(holder or dispatch.default_holder("controller"), lease_ttl)
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lease_valid_until = 0.0  # monotonic; we publish only before this
        self.published = 0
        db.dispatch_queued.connect(self._wake)

    @property
    def is_leader(self) -> bool:
        return self.lease.epoch is not None and time.monotonic() < self._lease_valid_until

    def mark_dirty(self, device_ids: Iterable[int]) -> None:
        """Queue these stations in a transaction of their own (start-up, the horizon roll).

        A write queues its stations itself (`dispatch.stations_changed` in its own
        transaction); the commit hook wakes this publisher (`Database.dispatch_queued`).
        """
        ids = list(device_ids)
        if not ids:
            return
        with self._db.session() as s:
            dispatch.stations_changed(s, ids)

    def _wake(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        else:
            loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        renew = asyncio.create_task(self._hold_lease(), name="dispatch-lease")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.POLL_S)
                self._wakeup.clear()
                if not self.is_leader:
                    continue
                await self._bus.connected.wait()
                try:
                    await self._drain()
                except dispatch.LeaseLost:
                    log.warning("dispatch lease lost; another replica dispatches now")
                    self._lease_valid_until = 0.0
                    continue
                except Exception as exc:
                    log.warning("desired state publish failed (%s); will retry", exc)
                    await asyncio.sleep(0.5)
                    self._wakeup.set()
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renew
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._release)

    async def _hold_lease(self) -> None:
        period = max(self.lease.ttl.total_seconds() / 5, 0.2)
        while True:
            try:
                was = self.is_leader
                if not self._bus.connected.is_set():
                    # Cut off from the broker: let the lease lapse so a replica that can
                    # publish takes over, instead of holding it and dispatching nothing.
                    self._lease_valid_until = 0.0
                    if was:
                        log.warning("broker unreachable; letting the dispatch lease lapse")
                elif await asyncio.to_thread(self._acquire):
                    if not was:
                        log.info("holding the dispatch lease (epoch %s)", self.lease.epoch)
                        self._wakeup.set()
                elif was:
                    log.warning("dispatch lease taken by another replica")
            except Exception as exc:
                log.warning("dispatch lease renewal failed (%s)", exc)
            if self._bus.connected.is_set():
                await asyncio.sleep(period)
            else:  # take the lease as soon as the broker is (back)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._bus.connected.wait(), period)

    def _acquire(self) -> bool:
        started = time.monotonic()
        with self._db.session() as s:
            ok = self.lease.acquire_or_renew(s)
        # Stop publishing well before another replica may take over (half the TTL).
        self._lease_valid_until = started + self.lease.ttl.total_seconds() / 2 if ok else 0.0
        return ok

    def _release(self) -> None:
        if self.lease.epoch is not None:
            with self._db.session() as s:
                self.lease.release(s)

    async def _drain(self) -> None:
        """Drain the queue, publishing batch k while batch k+1 is built and signed in a
        worker thread (at most one built batch waits; `communecast bench horizon`).

        Renewing the lease never waits for a batch: `_hold_lease` runs on its own, and a
        batch's version bumps commit only if the lease still has the epoch it had when
        the batch read its data (`Lease.fence`), however long the build took.
        """
        ready: _Batch | None = None
        while True:
            busy = ready.todo.device_ids if ready is not None else ()
            building = asyncio.ensure_future(asyncio.to_thread(self._build_batch, busy))
            if ready is not None:
                try:
                    await self._publish_batch(ready)
                except BaseException:
                    # Never two builds at once: let this one finish. Its version bumps may
                    # commit unpublished; its rows stay queued, so it is simply rebuilt.
                    await asyncio.wait({building})
                    if not building.cancelled():
                        building.exception()
                    raise
            ready = await building
            if ready is None:
                return

    def _build_batch(self, busy: Sequence[int]) -> _Batch | None:
        """Worker thread: read, build and sign one batch; commit its version bumps fenced."""
        epoch = self.lease.epoch  # before reading anything: the fence compares against it
        if epoch is None:
            raise dispatch.LeaseLost(self.lease.name)
        with self._db.session() as s:
            todo = dispatch.pending(s, BATCH, busy=busy)
            if not todo.row_ids:
                return None
            queued = metrics.queued_since(s, todo.device_ids)  # dispatch latency (docs/health.md)
            out = build(s, todo.device_ids, self._signer, now=datetime.now(UTC), horizon=self._horizon,
                        sources=self._sources, max_bytes=self._max_bytes)  # fmt: skip
            fenced_at = time.monotonic()
            self.lease.fence(s, epoch=epoch)  # the version bumps commit only while the lease is ours
        # Committed: the lease row now expires a whole TTL after fenced_at, so a slow build
        # does not shorten what the renewal task established (it only ever extends it).
        self._lease_valid_until = max(self._lease_valid_until, fenced_at + self.lease.ttl.total_seconds() / 2)
        return _Batch(todo, out, queued)

    async def _publish_batch(self, batch: _Batch) -> None:
        """Publish one built batch, then delete exactly the queue rows it read."""
        if not self.is_leader:
            raise dispatch.LeaseLost(self.lease.name)
        todo, outgoing = batch.todo, batch.outgoing
        results = await asyncio.gather(
            *(self._bus.publish(o.topic, o.payload, qos=1, retain=True) for o in outgoing),
            return_exceptions=True,
        )
        failed = {o.device_id for o, r in zip(outgoing, results, strict=True) if r is not None}
        self.published += len(outgoing) - len(failed)
        metrics.observe_dispatch(batch.queued, (o.device_id for o in outgoing if o.device_id not in failed))

        def _done() -> None:
            with self._db.session() as s:
                if failed:  # keep their rows: the next drain retries them
                    rows = s.execute(select(DispatchQueue.id, DispatchQueue.device_id)
                                     .where(DispatchQueue.id.in_(todo.row_ids))).all()
                    dispatch.done(s, [r for r, d in rows if d not in failed])
                else:
                    dispatch.done(s, todo.row_ids)

        await asyncio.to_thread(_done)
        if failed:
            raise ConnectionError(f"{len(failed)} desired-state publishes failed")


@dataclass(frozen=True)
class _Batch:
    """One built, signed and committed batch waiting to be published."""

    todo: dispatch.Pending
    outgoing: list[Outgoing]
    queued: dict[int, datetime]
