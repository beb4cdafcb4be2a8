"""Issue 8: the dispatch lease and the durable queue, on SQLite and PostgreSQL.

What an operator would notice if these were wrong: two replicas both publishing (a
station's retained state going backwards), or a bulletin never dispatched because the
replica that queued it died or a mark arrived while a batch was being published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import pytest
from sqlalchemy import select

from benchmarks import horizon as bench_horizon
from communecast.mosquitto import PrivateMosquitto, free_port
from controller import horizon_sources
from controller.db.models import Device
from controller.db.session import Database
from controller.mqtt.bus import MqttBus
from controller.services import desired_state, dispatch
from controller.services.desired_state import DesiredStatePublisher
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import (
    CommandKind,
    DesiredState,
    LedContent,
    LedMessage,
    MediaRef,
    Priority,
    ScheduleItem,
    StreamRef,
)
from protocol.signing import KeyPair, Signer, Verifier, b64u_decode
from testkit.harness import CONTROLLER_USER
from testkit.waiting import eventually

T = TypeVar("T")


def test_one_holder_at_a_time_and_a_stale_holder_is_fenced_off(db: Database) -> None:
    ttl = timedelta(seconds=5)
    a, b = dispatch.Lease("replica-a", ttl), dispatch.Lease("replica-b", ttl)
    t0 = datetime.now(UTC)
    with db.session() as s:
        assert a.acquire_or_renew(s, t0)
    with db.session() as s:
        assert not b.acquire_or_renew(s, t0 + timedelta(seconds=1))
    with db.session() as s:
        assert a.acquire_or_renew(s, t0 + timedelta(seconds=2))  # renew
        a.fence(s, t0 + timedelta(seconds=2))
    first_epoch = a.epoch
    # a stops renewing (killed or paused): after the expiry b takes over with a new epoch
    with db.session() as s:
        assert b.acquire_or_renew(s, t0 + timedelta(seconds=8))
    assert b.epoch == (first_epoch or 0) + 1
    with pytest.raises(dispatch.LeaseLost), db.session() as s:
        a.fence(s, t0 + timedelta(seconds=8.5))  # its transaction must not commit
    with db.session() as s:
        assert not a.acquire_or_renew(s, t0 + timedelta(seconds=9))
        b.release(s)
    with db.session() as s:  # a clean shutdown hands over at once
        assert a.acquire_or_renew(s, t0 + timedelta(seconds=9.5))


def test_queue_survives_and_a_mark_made_during_a_drain_is_kept(db: Database) -> None:
    ids = [101, 102, 103]  # station ids (the queue only needs the numbers)
    with db.session() as s:
        dispatch.enqueue(s, [ids[0], ids[1], ids[0]])
        dispatch.enqueue(s, [ids[1]])
    with db.session() as s:
        assert dispatch.pending(s, max_devices=1).device_ids == [ids[0]]
        todo = dispatch.pending(s, max_devices=10)
    assert sorted(todo.device_ids) == sorted(ids[:2]) and len(todo.row_ids) == 3  # one build each
    with db.session() as s:  # marked again while the batch is being published
        dispatch.enqueue(s, [ids[1], ids[2]])
    with db.session() as s:
        dispatch.done(s, todo.row_ids)
    with db.session() as s:
        assert sorted(dispatch.pending(s, max_devices=10).device_ids) == sorted(ids[1:])
        assert dispatch.backlog(s) == 2


def test_a_batch_read_before_a_takeover_is_fenced_even_if_the_lease_came_back(db: Database) -> None:
    """A -> B -> A: A's renewal gets the lease back with a new epoch, but a batch A read
    under the old epoch must still not commit (B may have bumped versions meanwhile)."""
    ttl = timedelta(seconds=5)
    a, b = dispatch.Lease("replica-a", ttl), dispatch.Lease("replica-b", ttl)
    t0 = datetime.now(UTC)
    with db.session() as s:
        assert a.acquire_or_renew(s, t0)
    batch_epoch = a.epoch
    with db.session() as s:
        assert b.acquire_or_renew(s, t0 + timedelta(seconds=6))
        b.release(s)
    with db.session() as s:
        assert a.acquire_or_renew(s, t0 + timedelta(seconds=7))
    assert a.epoch == (batch_epoch or 0) + 2
    with pytest.raises(dispatch.LeaseLost), db.session() as s:
        a.fence(s, t0 + timedelta(seconds=7), epoch=batch_epoch)
    assert a.epoch is not None  # the lease itself is still A's: a fresh batch may commit
    with db.session() as s:
        a.fence(s, t0 + timedelta(seconds=7))


# -- the publisher under a slow build (a loaded machine, a huge batch) ----------------------------------
LEASE = timedelta(seconds=2)
SLOW_S = 2.5  # longer than the whole lease, let alone the half of it a batch used to get


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    b = PrivateMosquitto(tmp_path / "broker", port=free_port(), controller_user=CONTROLLER_USER,
                         controller_password=secrets.token_urlsafe(12))
    b.start()
    yield b
    b.stop()


@contextlib.asynccontextmanager
async def running(
    db: Database, broker: PrivateMosquitto
) -> AsyncIterator[tuple[DesiredStatePublisher, Heard]]:
    """A publisher on a real bus, and a subscriber recording every desired state it sees."""
    login: dict[str, Any] = {"username": CONTROLLER_USER, "password": broker.controller_password}
    bus = MqttBus(broker.host, broker.port, client_id=f"lease-{secrets.token_hex(3)}", on_message=_ignore,
                  subscriptions=(), **login)
    heard: Heard = {}
    ear_id = f"ear-{secrets.token_hex(3)}"
    async with aiomqtt.Client(broker.host, broker.port, identifier=ear_id, **login) as ear:
        await ear.subscribe(f"{topics.ROOT}/dev/+/desired", qos=1)

        async def listen() -> None:
            async for msg in ear.messages:
                raw = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                env = json.loads(b64u_decode(SignedMessage.model_validate_json(raw).payload))
                uid = topics.parse_device_topic(msg.topic.value).uid  # type: ignore[union-attr]
                heard.setdefault(uid, []).append(env["body"]["version"])

        tasks = [asyncio.create_task(bus.run()), asyncio.create_task(listen())]
        publisher = DesiredStatePublisher(db, bus, Signer(KeyPair.generate()), timedelta(days=2),
                                          sources=horizon_sources.standard(), holder="replica-a",
                                          lease_ttl=LEASE)
        tasks.append(asyncio.create_task(publisher.run()))
        try:
            yield publisher, heard
        finally:
            bus.stop()
            for t in reversed(tasks):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t


Heard = dict[str, list[int]]


async def _ignore(_topic: str, _payload: bytes) -> None:
    return None


def _versions(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {uid: v for uid, v in s.execute(select(Device.uid, Device.desired_version))}


async def test_a_build_slower_than_the_lease_still_publishes_exactly_once(
    db: Database, broker: PrivateMosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench_horizon.seed(db, 3, 1, 1)  # three stations with real recurring schedules
    real_build = desired_state.build

    def slow_build(*args: Any, **kwargs: Any) -> list[desired_state.Outgoing]:
        out = real_build(*args, **kwargs)
        time.sleep(SLOW_S)  # in the worker thread, with the version bumps pending
        return out

    monkeypatch.setattr(desired_state, "build", slow_build)
    async with running(db, broker) as (publisher, heard):
        await eventually(lambda: _async(publisher.is_leader), bool, timeout=10, what="the lease")
        publisher.mark_dirty(_ids(db))
        await eventually(lambda: _async(_backlog(db)), lambda n: n == 0, timeout=30, what="the queue drained")
        await eventually(lambda: _async(dict(heard)), lambda h: len(h) == 3, timeout=10, what="3 states")
        assert publisher.published == 3
        assert all(v == [1] for v in heard.values()), heard  # one publish each, never rebuilt
        assert set(_versions(db).values()) == {1}
        assert publisher.lease.epoch == 1  # renewed all along: never lost, never re-taken


async def test_a_takeover_during_a_build_fences_the_old_holder(
    db: Database, broker: PrivateMosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench_horizon.seed(db, 3, 1, 1)
    real_build = desired_state.build
    other = dispatch.Lease("replica-b", LEASE)
    took_over = threading.Event()

    def lose_the_lease_then_build(*args: Any, **kwargs: Any) -> list[desired_state.Outgoing]:
        # A's batch has read its rows under its epoch; as if A then paused past its expiry,
        # B takes over (before A's version bumps, which on SQLite would make B wait for A).
        if not took_over.is_set():
            with db.session() as s:
                assert other.acquire_or_renew(s, datetime.now(UTC) + timedelta(hours=1))
            took_over.set()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(desired_state, "build", lose_the_lease_then_build)
    async with running(db, broker) as (publisher, heard):
        fenced: list[BaseException] = []
        real_fence = publisher.lease.fence

        def recording_fence(*args: Any, **kwargs: Any) -> None:
            try:
                real_fence(*args, **kwargs)
            except dispatch.LeaseLost as exc:
                fenced.append(exc)
                raise

        monkeypatch.setattr(publisher.lease, "fence", recording_fence)
        await eventually(lambda: _async(publisher.is_leader), bool, timeout=10, what="the lease")
        publisher.mark_dirty(_ids(db))
        await eventually(lambda: _async(list(fenced)), bool, timeout=20, what="A's batch fenced off")
        assert set(_versions(db).values()) == {0} and _backlog(db) == 3 and heard == {}  # nothing committed
        await eventually(lambda: _async(publisher.is_leader), lambda x: not x, timeout=10, what="step-down")
        with db.session() as s:  # B shuts down cleanly: A takes over and dispatches everything once
            other.release(s)
        await eventually(lambda: _async(_backlog(db)), lambda n: n == 0, timeout=30, what="the queue drained")
        await eventually(lambda: _async(dict(heard)), lambda h: len(h) == 3, timeout=10, what="3 states")
        assert all(v == [1] for v in heard.values()), heard
        assert set(_versions(db).values()) == {1}


def test_spliced_desired_state_is_byte_identical_to_sealing_the_model() -> None:
    """desired_state._sealed splices pre-serialized items; stations must see the same bytes."""
    now = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    sha = "ab" * 32
    items = [
        ScheduleItem(item_id="b1", broadcast_id=7, title='Bản tin "sáng" \\ xã', start_at=now, volume=90,
                     priority=Priority.EMERGENCY, media=[MediaRef(sha256=sha, size=12, duration_s=61.25)]),
        ScheduleItem(item_id="l2", title="Trực tiếp", start_at=now, end_at=now + timedelta(hours=1),
                     stream=StreamRef(url="/api/v1/live/1/audio", kind="live", token="t" * 20)),
    ]
    led = LedContent(messages=[LedMessage(item_id="m1", text="Chào mừng", duration_s=5)])
    keys = KeyPair.generate()
    signer = Signer(keys)
    for schedule, board in ((items, None), ([], led), (items * 2, led)):
        head = DesiredState(version=4, horizon_until=now + timedelta(days=8), led=board)
        wire = SignedMessage.model_validate_json(desired_state._sealed(
            head, schedule, "dev/hz-1", signer, now=now, ttl=timedelta(days=8)))
        raw = b64u_decode(wire.payload)
        env = Envelope.model_validate_json(raw)
        full = head.model_copy(update={"schedule": schedule})
        reference = Envelope(id=env.id, kind=CommandKind.DESIRED_STATE, issued_at=now,
                             expires_at=now + timedelta(days=8), target="dev/hz-1",
                             body=full.model_dump(mode="json")).model_dump_json().encode()
        assert raw == reference
        Verifier([keys.public]).verify(wire.kid, raw, wire.sig)


async def _async(value: T) -> T:
    return value


def _ids(db: Database) -> list[int]:
    with db.session() as s:
        return list(s.scalars(select(Device.id)))


def _backlog(db: Database) -> int:
    with db.session() as s:
        return dispatch.backlog(s)
