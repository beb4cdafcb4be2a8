"""The MQTT bus's burst reader (controller/mqtt/bus.py): a socket wake-up's messages go to
the ingest as one list, every message once and in order, and their PUBACKs really go out
(a persistent session resumed with the same client id gets nothing again)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from communecast.mosquitto import PrivateMosquitto, free_port
from controller.mqtt.bus import MqttBus
from mqtt_adapter import Message
from protocol import topics
from testkit.waiting import eventually

N = 3000


def _publish(port: int, payloads: list[bytes]) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="burst-pub", clean_session=True)
    c.username_pw_set("ctl", "pw")
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(topics.events(f"spk-{n % 10}"), p, qos=1) for n, p in enumerate(payloads)]
    infos[-1].wait_for_publish(20)
    c.loop_stop()
    c.disconnect()


Received = list[tuple[str, bytes]]


async def _run_bus(port: int, got: Received, sizes: list[int]) -> tuple[MqttBus, asyncio.Task[None]]:
    def on_batch(batch: list[Message]) -> None:
        got.extend((m.topic, m.payload) for m in batch)
        sizes.append(len(batch))

    bus = MqttBus("127.0.0.1", port, client_id="burst-ctl", username="ctl", password="pw", on_batch=on_batch)
    task = asyncio.create_task(bus.run())
    await asyncio.wait_for(bus.connected.wait(), 10)
    return bus, task


async def _stop(bus: MqttBus, task: asyncio.Task[None]) -> None:
    bus.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_burst_reader_delivers_everything_once_in_order_and_acks(tmp_path: Path) -> None:
    port = free_port()
    broker = PrivateMosquitto(tmp_path / "broker", port=port, controller_user="ctl", controller_password="pw",
                              dynsec=False)  # fmt: skip
    broker.start()
    try:
        got: Received = []
        sizes: list[int] = []
        bus, task = await _run_bus(port, got, sizes)
        await asyncio.to_thread(_publish, port, [str(n).encode() for n in range(N)])
        await eventually(count_of(got), lambda n: n >= N, timeout=20, what=f"{N} messages")
        assert [int(p) for _, p in got] == list(range(N))
        assert got[7][0] == topics.events("spk-7")
        assert max(sizes) > 1  # whole socket reads, not one message per call
        await _stop(bus, task)

        # Same client id, persistent session: anything not acknowledged would come again first.
        again: Received = []
        bus, task = await _run_bus(port, again, [])
        await asyncio.to_thread(_publish, port, [b"marker"])
        await eventually(count_of(again), lambda n: n >= 1, timeout=10, what="the marker")
        assert again == [(topics.events("spk-0"), b"marker")]
        await _stop(bus, task)
    finally:
        broker.stop()


async def test_qos0_batch_reaches_a_subscriber_whole_and_in_order(tmp_path: Path) -> None:
    """Event receipts go out as one encoded write (bus.send_now): every message reaches a
    real subscriber with its topic and payload intact, in order, including payloads whose
    length needs two and three bytes (MQTT's remaining length)."""
    port = free_port()
    broker = PrivateMosquitto(tmp_path / "broker", port=port, controller_user="ctl", controller_password="pw",
                              dynsec=False)  # fmt: skip
    broker.start()
    heard: Received = []
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rcpt-sub", clean_session=True)
    sub.username_pw_set("ctl", "pw")
    sub.on_message = lambda _c, _u, m: heard.append((m.topic, m.payload))
    sub.on_subscribe = lambda *_a: loop.call_soon_threadsafe(subscribed.set)
    try:
        bus, task = await _run_bus(port, [], [])
        sub.connect("127.0.0.1", port)
        sub.subscribe(topics.receipts("spk-0").replace("spk-0", "+"), qos=0)
        sub.loop_start()
        await asyncio.wait_for(subscribed.wait(), 10)
        sizes = [1, 127, 128, 300, 16_383, 16_384, 200_000] + [40] * 500
        sent = [(topics.receipts(f"spk-{n}"), bytes([65 + n % 26]) * size) for n, size in enumerate(sizes)]
        assert bus.send_now(sent)
        await eventually(count_of(heard), lambda n: n >= len(sent), timeout=10, what="every receipt")
        assert heard == sent
        await _stop(bus, task)
        assert not bus.send_now(sent[:1])  # not connected: the stations will send again
    finally:
        sub.loop_stop()
        broker.stop()


def count_of(items: Received) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return len(items)

    return probe
