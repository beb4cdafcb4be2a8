"""Builds, signs and publishes each station's retained desired state.

The database is the truth; the publisher only remembers which stations are 'dirty'.
Anything that changes what a station should do marks it dirty, and one task publishes
(so versions per station are strictly increasing). A failed publish leaves the station
dirty, so it is retried when the broker is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Broadcast, Delivery, Device, Media
from controller.db.session import Database
from controller.mqtt.bus import MqttBus
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
    out: list[Outgoing] = []
    for device in devices:
        if device.retired_at is not None:
            continue
        device.desired_version += 1
        state = DesiredState(
            version=device.desired_version,
            horizon_until=now + horizon,
            schedule=items[device.id],
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
    def __init__(self, db: Database, bus: MqttBus, signer: Signer, horizon: timedelta) -> None:
        self._db = db
        self._bus = bus
        self._signer = signer
        self._horizon = horizon
        self._dirty: set[int] = set()
        self._wakeup = asyncio.Event()
        self.published = 0

    def mark_dirty(self, device_ids: Iterable[int]) -> None:
        self._dirty.update(device_ids)
        if self._dirty:
            self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            await self._bus.connected.wait()
            self._wakeup.clear()
            batch = sorted(self._dirty)[:BATCH]
            self._dirty.difference_update(batch)
            if self._dirty:
                self._wakeup.set()
            try:
                await self._publish(batch)
            except Exception as exc:
                log.warning("desired state publish failed (%s); will retry", exc)
                self.mark_dirty(batch)
                await asyncio.sleep(0.5)

    async def _publish(self, device_ids: list[int]) -> None:
        def _build() -> list[Outgoing]:
            with self._db.session() as s:
                return build(
                    s, device_ids, self._signer, now=datetime.now(UTC), horizon=self._horizon
                )

        outgoing = await asyncio.to_thread(_build)
        results = await asyncio.gather(
            *(self._bus.publish(o.topic, o.payload, qos=1, retain=True) for o in outgoing),
            return_exceptions=True,
        )
        failed = [o.device_id for o, r in zip(outgoing, results, strict=True) if r is not None]
        self.published += len(outgoing) - len(failed)
        if failed:
            self.mark_dirty(failed)
            raise ConnectionError(f"{len(failed)} desired-state publishes failed")
