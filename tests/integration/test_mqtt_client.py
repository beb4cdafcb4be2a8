"""The agents' MQTT client (mqtt_adapter.StationClient) and the outbox on top of it
(device_agents/common/link.py), against a real Mosquitto: messages arrive once and in order,
a payload larger than the socket buffer still goes out whole, a lost broker ends the
message loop instead of hanging it, and an outbox larger than the in-flight window reaches
the broker in order and is emptied only by PUBACKs (events with an id: only by the
controller's receipt, and sent again while none comes)."""

from __future__ import annotations

import asyncio
import contextlib
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from communecast.mosquitto import PrivateMosquitto, free_port
from device_agents.common.link import OUTBOX_WINDOW, AgentLink
from device_agents.common.store import AgentStore
from mqtt_adapter import StationClient
from protocol import topics
from protocol.limits import MAX_PACKET_SIZE
from protocol.messages import Receipt
from testkit.waiting import eventually

USER, PASSWORD = "ctl", "pw"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    b = PrivateMosquitto(tmp_path / "broker", port=free_port(), controller_user=USER,
                         controller_password=PASSWORD, dynsec=False)  # fmt: skip
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _client(broker: PrivateMosquitto, name: str) -> StationClient:
    return StationClient("127.0.0.1", broker.port, username=USER, password=PASSWORD, identifier=name,
                         timeout=10)


async def _collect(client: StationClient, n: int, into: list[bytes]) -> None:
    async for message in client.messages:
        assert isinstance(message.payload, bytes)
        into.append(message.payload)
        if len(into) == n:
            return


async def test_publish_and_receive_in_order_with_a_payload_larger_than_the_socket_buffer(
    broker: PrivateMosquitto,
) -> None:
    # Just under the broker's packet limit (1 MiB): far more than the socket's first write takes.
    big = bytes(range(256)) * ((MAX_PACKET_SIZE - 4096) // 256)
    payloads = [str(i).encode() for i in range(300)] + [big]
    got: list[bytes] = []
    async with _client(broker, "reader") as reader, _client(broker, "writer") as writer:
        await reader.subscribe("cc/v1/test/order", qos=1)
        collecting = asyncio.create_task(_collect(reader, len(payloads), got))
        for p in payloads[:-1]:  # each waits for its PUBACK
            await writer.publish("cc/v1/test/order", p, qos=1)
        pending = writer.publish_nowait("cc/v1/test/order", big, qos=1)
        await asyncio.wait_for(pending.acked.wait(), 20)
        await asyncio.wait_for(collecting, 20)
    assert got[:-1] == payloads[:-1]
    assert got[-1] == big


async def test_losing_the_broker_ends_the_message_loop(broker: PrivateMosquitto) -> None:
    async with _client(broker, "orphan") as client:
        await client.subscribe("cc/v1/test/none", qos=1)
        reading = asyncio.create_task(_collect(client, 1, []))
        await asyncio.sleep(0)
        broker.stop()
        with pytest.raises(aiomqtt.MqttError):
            await asyncio.wait_for(reading, 15)  # not a hang
        with pytest.raises(aiomqtt.MqttError):
            await client.publish("cc/v1/test/none", b"late", qos=1)


async def test_outbox_beyond_the_window_arrives_in_order_and_empties_on_pubacks(
    broker: PrivateMosquitto,
) -> None:
    store = AgentStore(None)
    n = OUTBOX_WINDOW * 3 + 7
    for i in range(n // 2):  # queued while offline
        store.enqueue("cc/v1/dev/spk-x/evt", f"e{i}".encode())
    link = AgentLink(host="127.0.0.1", port=broker.port, client_id="spk-x", username=USER, password=PASSWORD,
                     keepalive=30, subscriptions=["cc/v1/dev/spk-x/cmd"], state_topic="cc/v1/dev/spk-x/state",
                     birth=lambda: b"{}", last_will=b"{}", store=store,
                     on_message=lambda _t, _p: asyncio.sleep(0))  # fmt: skip
    got: list[bytes] = []
    async with _client(broker, "listener") as listener:
        await listener.subscribe("cc/v1/dev/spk-x/evt", qos=1)
        collecting = asyncio.create_task(_collect(listener, n, got))
        running = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.connected.wait(), 10)
            for i in range(n // 2, n):  # queued while online: handed to the socket at once
                store.enqueue("cc/v1/dev/spk-x/evt", f"e{i}".encode())
                link.wake_outbox()
            await asyncio.wait_for(collecting, 20)
            await eventually(_outbox_size(store), lambda k: k == 0, timeout=10, what="an empty outbox")
        finally:
            await link.close()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert got == [f"e{i}".encode() for i in range(n)]


async def test_an_event_stays_until_the_controllers_receipt_and_is_sent_again_while_none_comes(
    broker: PrivateMosquitto,
) -> None:
    """The broker's PUBACK is one hop: the station keeps the event, sends it again when no
    receipt names it in time (the controller crashed before storing it), and forgets it at
    the receipt; a malformed receipt is ignored, not fatal."""
    store = AgentStore(None)
    uid = "spk-r"
    store.enqueue(topics.events(uid), b"proof", "event-proof-1")
    link = AgentLink(host="127.0.0.1", port=broker.port, client_id=uid, username=USER, password=PASSWORD,
                     keepalive=30, subscriptions=[topics.cmd(uid)], state_topic=topics.state(uid),
                     birth=lambda: b"{}", last_will=b"{}", store=store,
                     on_message=lambda _t, _p: asyncio.sleep(0), receipt_topic=topics.receipts(uid),
                     receipt_wait_s=1.0, receipt_wait_cap_s=2.0)  # fmt: skip
    got: list[bytes] = []
    async with _client(broker, "controller") as controller:
        await controller.subscribe(topics.events(uid), qos=1)
        collecting = asyncio.create_task(_collect(controller, 2, got))
        running = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(collecting, 15)  # the first send, then the same event again
            assert got == [b"proof", b"proof"]
            assert store.outbox_size() == 1 and link.sent_again >= 1
            await controller.publish(topics.receipts(uid), b"not json", qos=0)
            await controller.publish(topics.receipts(uid), Receipt(ids=["event-proof-1"]).model_dump_json(),
                                     qos=0)  # fmt: skip
            await eventually(_outbox_size(store), lambda k: k == 0, timeout=10, what="the receipt's effect")
            assert link.connected.is_set()
        finally:
            await link.close()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


def _outbox_size(store: AgentStore):  # type: ignore[no-untyped-def]
    async def probe() -> int:
        return len(store.outbox_head(10_000))

    return probe


def _publish_while_this_loop_is_held(
    broker: PrivateMosquitto, reader: StationClient, topic: str, text: str, hold_s: float
) -> float:
    """Another process publishes while the caller's event loop is held up (as by other stations'
    work in a fleet): nobody reads `reader`'s socket until this returns, `hold_s` after the
    message reached it; returns when it did."""
    subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-u", USER, "-P", PASSWORD, "-q", "1",
                    "-t", topic, "-m", text], check=True, timeout=10)  # fmt: skip
    readable, _, _ = select.select([reader.socket()], [], [], 10)  # the broker forwarded it
    assert readable, "the broker did not forward the message"
    time.sleep(hold_s)
    return time.time()


async def test_socket_arrival_is_told_apart_from_when_the_process_read_the_message(
    broker: PrivateMosquitto,
) -> None:
    """The fleet simulator's stations share a CPU: a message can wait in its socket until the
    process gets to it. With stamp_socket_arrival the client also notes when the bytes reached
    the socket (kernel clock), which a station with its own CPU would have read at once."""
    stamped = StationClient("127.0.0.1", broker.port, username=USER, password=PASSWORD, identifier="stamped",
                            timeout=10, stamp_socket_arrival=True)  # fmt: skip
    plain = StationClient("127.0.0.1", broker.port, username=USER, password=PASSWORD, identifier="plain",
                          timeout=10)  # fmt: skip
    async with stamped, plain, _client(broker, "writer") as writer:
        await stamped.subscribe("cc/v1/test/stamp", qos=1)
        await plain.subscribe("cc/v1/test/stamp", qos=1)
        unblocked = _publish_while_this_loop_is_held(broker, stamped, "cc/v1/test/stamp", "hello", hold_s=0.3)
        async with asyncio.timeout(10):
            got = await anext(aiter(stamped.messages))
            other = await anext(aiter(plain.messages))
        assert got.payload == b"hello" and other.payload == b"hello"
        reached = got.reached_socket_at
        assert reached is not None and reached <= unblocked - 0.29  # it was there before the wait
        assert got.arrived_at >= unblocked  # the process read it only afterwards
        assert other.reached_socket_at is None  # not asked: plain recv(), nothing noted
        await writer.publish("cc/v1/test/stamp", b"again", qos=1)  # reading goes on as before
        async with asyncio.timeout(10):
            again = await anext(aiter(stamped.messages))
        assert again.payload == b"again"
        assert again.reached_socket_at is not None and again.reached_socket_at >= unblocked
