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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from controller.db.models import Broadcast, Delivery, Device, Media
from controller.db.models_dispatch import DispatchQueue
from controller.db.session import Database
from controller.mqtt.bus import MqttBus
from controller.services import dispatch, led, schedules
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import CommandKind, DesiredState, MediaRef, Priority, ScheduleItem
from protocol.signing import Signer

log = logging.getLogger(__name__)

BATCH = 500
# Items that ended longer ago than this are dropped from the horizon.
KEEP_PAST = timedelta(minutes=10)


@dataclass(frozen=True)
class Outgoing:
    device_id: int
    topic: str
    payload: bytes
    version: int


def build(
    session: Session, device_ids: list[int], signer: Signer, *, now: datetime, horizon: timedelta
) -> list[Outgoing]:
    devices = list(session.scalars(select(Device).where(Device.id.in_(device_ids))))
    rows = session.execute(
        select(Delivery, Broadcast)
        .join(Broadcast, Delivery.broadcast_id == Broadcast.id)
        .where(
            Delivery.device_id.in_(device_ids),
            Broadcast.status == "scheduled",
            Broadcast.start_at >= now - timedelta(days=1),
            Broadcast.start_at <= now + horizon,
        )
        .order_by(Broadcast.start_at)
    ).all()
    shas = {sha for _, b in rows for sha in b.media}
    media = {m.sha256: m for m in session.scalars(select(Media).where(Media.sha256.in_(shas)))}
    items: dict[int, list[ScheduleItem]] = {d.id: [] for d in devices}
    for delivery, bc in rows:
        if bc.start_at + timedelta(seconds=bc.duration_s) < now - KEEP_PAST:
            continue
        items[delivery.device_id].append(
            ScheduleItem(
                item_id=delivery.item_id,
                broadcast_id=bc.id,
                title=bc.title,
                start_at=bc.start_at,
                priority=Priority(bc.priority),
                media=[
                    MediaRef(sha256=s, size=media[s].size, duration_s=media[s].duration_s)
                    for s in bc.media
                ],
            )
        )
        if delivery.sent_at is None:
            delivery.sent_at = now
    led_content = led.content_for(session, [d.id for d in devices], now)  # LED boards only
    for device_id, occurrences in schedules.horizon_items(session, devices, now=now, horizon=horizon).items():
        items[device_id] = sorted(items[device_id] + occurrences, key=lambda i: i.start_at)
    out: list[Outgoing] = []
    for device in devices:
        if device.retired_at is not None:
            continue
        device.desired_version += 1
        state = DesiredState(
            version=device.desired_version,
            horizon_until=now + horizon,
            schedule=items[device.id],
            led=led_content.get(device.id),
        )
        topic = topics.desired(device.uid)
        env = Envelope.new(
            CommandKind.DESIRED_STATE,
            topics.target_of(topic),
            state.model_dump(mode="json"),
            ttl=horizon,
            now=now,
        )
        payload = SignedMessage.seal(env, signer).to_bytes()
        out.append(Outgoing(device.id, topic, payload, device.desired_version))
    return out


class DesiredStatePublisher:
    """Drains the durable dispatch queue while this replica holds the dispatch lease.

    `mark_dirty(ids)` is the public API (routes, the horizon roll, start-up): it writes
    queue rows — in the caller's transaction when given `session=`, else in its own —
    so a dispatch survives a crash of this process and is done by whichever replica
    holds the lease (controller/services/dispatch.py). It may be called from worker
    threads (sync routes) as well as from the event loop.
    """

    POLL_S = 0.25  # how soon marks made by another replica are noticed

    def __init__(
        self, db: Database, bus: MqttBus, signer: Signer, horizon: timedelta, *,
        holder: str | None = None, lease_ttl: timedelta = timedelta(seconds=5),
    ) -> None:  # fmt: skip
        self._db = db
        self._bus = bus
        self._signer = signer
        self._horizon = horizon
        self.lease = dispatch.Lease(holder or dispatch.default_holder("controller"), lease_ttl)
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lease_valid_until = 0.0  # monotonic; we publish only before this
        self.published = 0

    @property
    def is_leader(self) -> bool:
        return self.lease.epoch is not None and time.monotonic() < self._lease_valid_until

    def mark_dirty(self, device_ids: Iterable[int], *, session: Session | None = None) -> None:
        ids = list(device_ids)
        if not ids:
            return
        if session is not None:
            dispatch.enqueue(session, ids)
            event.listen(session, "after_commit", lambda _s: self._wake(), once=True)
            return
        with self._db.session() as s:
            dispatch.enqueue(s, ids)
        self._wake()

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
                    more = await self._drain_once()
                except dispatch.LeaseLost:
                    log.warning("dispatch lease lost; another replica dispatches now")
                    self._lease_valid_until = 0.0
                    continue
                except Exception as exc:
                    log.warning("desired state publish failed (%s); will retry", exc)
                    await asyncio.sleep(0.5)
                    more = True
                if more:
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

    async def _drain_once(self) -> bool:
        """Build, sign and publish one batch; returns whether more may be waiting."""

        def _build() -> tuple[dispatch.Pending, list[Outgoing]]:
            with self._db.session() as s:
                todo = dispatch.pending(s, BATCH)
                if not todo.row_ids:
                    return todo, []
                started = time.monotonic()
                out = build(s, todo.device_ids, self._signer, now=datetime.now(UTC), horizon=self._horizon)
                self.lease.fence(s)  # the version bumps commit only while the lease is ours
                self._lease_valid_until = started + self.lease.ttl.total_seconds() / 2
                return todo, out

        todo, outgoing = await asyncio.to_thread(_build)
        if not todo.row_ids:
            return False
        if not self.is_leader:
            raise dispatch.LeaseLost(self.lease.name)
        results = await asyncio.gather(
            *(self._bus.publish(o.topic, o.payload, qos=1, retain=True) for o in outgoing),
            return_exceptions=True,
        )
        failed = {o.device_id for o, r in zip(outgoing, results, strict=True) if r is not None}
        self.published += len(outgoing) - len(failed)

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
        return True
