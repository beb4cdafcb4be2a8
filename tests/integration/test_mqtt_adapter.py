"""The MQTT adapter (mqtt_adapter/): its own message type carries what the project reads of a
message as fields, in the controller's bursts as in a station's stream; a publish waiting for
its PUBACK fails as soon as the connection ends; and no module outside mqtt_adapter/client.py
touches a private member of paho or aiomqtt (the point of the package)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from communecast.mosquitto import PrivateMosquitto, free_port
from mqtt_adapter import ControllerClient, Message, StationClient
from testkit.waiting import eventually

USER, PASSWORD = "ctl", "pw"
ROOT = Path(__file__).resolve().parents[2]
THE_ONE_FILE = ROOT / "mqtt_adapter" / "client.py"

# Private members of paho's or aiomqtt's clients the project has ever used (and any attribute
# reached through a library client's own `_client`).
LIBRARY_INTERNALS = re.compile(
    r"\._(?:sock_recv|packet_read|out_packet|pending_publishes|misc_loop|in_callback_mutex|registered_write"
    r"|loop_rc_handle|disconnected|from_paho_message|outgoing_calls_sem|on_socket_\w+|sock)\b|\._client\._\w"
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    b = PrivateMosquitto(tmp_path / "broker", port=free_port(), controller_user=USER,
                         controller_password=PASSWORD, dynsec=False)  # fmt: skip
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _station(broker: PrivateMosquitto, name: str) -> StationClient:
    return StationClient("127.0.0.1", broker.port, username=USER, password=PASSWORD, identifier=name,
                         timeout=10)  # fmt: skip


def test_only_the_adapter_touches_paho_and_aiomqtt_internals() -> None:
    offenders = []
    for folder in ("controller", "device_agents", "firmware_sim", "communecast", "protocol", "mqtt_adapter",
                   "benchmarks", "testkit", "tests"):  # fmt: skip
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in (THE_ONE_FILE, Path(__file__).resolve()):
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if LIBRARY_INTERNALS.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
    assert LIBRARY_INTERNALS.search((THE_ONE_FILE).read_text(encoding="utf-8"))  # the pattern still bites


async def test_controller_bursts_and_station_messages_carry_their_fields(broker: PrivateMosquitto) -> None:
    """Topic, payload, QoS, retain and when this process read the message are fields of the
    adapter's own frozen Message, on the controller's burst path and on a station's stream."""
    burst: list[Message] = []
    async with ControllerClient("127.0.0.1", broker.port, username=USER, password=PASSWORD,
                                identifier="adapter-ctl", timeout=10) as ctl, \
            _station(broker, "adapter-stn") as station, _station(broker, "adapter-pub") as pub:  # fmt: skip
        await ctl.subscribe("cc/v1/test/adapter/#", qos=1)
        await station.subscribe("cc/v1/test/adapter/#", qos=1)
        assert ctl.read_in_bursts(burst.extend)
        before = time.time()
        await pub.publish("cc/v1/test/adapter/a", b"one", qos=1)
        await pub.publish("cc/v1/test/adapter/b", b"two", qos=0, retain=True)
        await eventually(_count(burst), lambda n: n >= 2, timeout=10, what="both messages at the controller")
        async with asyncio.timeout(10):
            first = await anext(aiter(station.messages))
            second = await anext(aiter(station.messages))
        after = time.time()
    for got in (burst, [first, second]):
        assert [(m.topic, m.payload, m.qos) for m in got] == [
            ("cc/v1/test/adapter/a", b"one", 1), ("cc/v1/test/adapter/b", b"two", 0)]
        assert [m.retain for m in got] == [False, False]  # retain is only set on a stored copy
        assert all(before <= m.arrived_at <= after for m in got)
        assert all(m.reached_socket_at is None for m in got)  # not asked for
    with pytest.raises(AttributeError):
        first.arrived_at = 0.0  # type: ignore[misc]  # frozen: safe to hand to another task


async def test_a_publish_waiting_for_its_puback_fails_when_the_connection_ends(
    broker: PrivateMosquitto,
) -> None:
    """Not after the client's timeout: the moment the connection is gone, the waiting publish
    wakes and says the broker never acknowledged it."""
    pid = int(broker.pid_file.read_text().split()[0])
    async with _station(broker, "adapter-orphan") as client:
        os.kill(pid, signal.SIGSTOP)  # the broker takes the publish but never answers
        try:
            late = client.publish("cc/v1/test/adapter/x", b"late", qos=1, timeout=60)
            publishing = asyncio.create_task(late)
            await asyncio.sleep(0.3)
            assert not publishing.done()
            began = time.monotonic()
            os.kill(pid, signal.SIGKILL)  # the connection ends (the kernel closes the socket)
        except BaseException:
            os.kill(pid, signal.SIGCONT)
            raise
        with pytest.raises(aiomqtt.MqttError, match="PUBACK"):
            await asyncio.wait_for(publishing, 15)
        assert time.monotonic() - began < 10  # far from the 60 s timeout


def _count(items: list[Message]):  # type: ignore[no-untyped-def]
    async def probe() -> int:
        return len(items)

    return probe
