"""Issue 6 acceptance, broker authorization: with one station's credentials the broker
refuses everything but that station's own topics, and a retired station is thrown off
within 2 s and cannot come back. Checked with a real MQTT client against real Mosquitto
(dynamic security), with the controller on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from protocol import topics
from testkit.harness import CONTROLLER_USER, Station, System
from testkit.waiting import eventually

REFUSED = 0x80  # SUBACK "failure" (MQTT 3.1.1) / "unspecified error" (MQTT 5)


def station_client(station: Station) -> aiomqtt.Client:
    """The station's own credentials and client id (the broker binds the two: issue 16)."""
    c = station.config
    return aiomqtt.Client("127.0.0.1", c.mqtt_port, identifier=c.uid,
                          username=c.mqtt_username, password=c.mqtt_password)


def controller_client(system: System) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", system.broker.port, identifier="test-spy",
                          username=CONTROLLER_USER, password=system.mqtt_password)


async def first_message(client: aiomqtt.Client, timeout: float) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            return message
    raise AssertionError("no message")


async def test_a_station_may_touch_only_its_own_topics(system: System) -> None:
    a, b = await system.add_stations(2)
    assert system.broker.dynsec, "the suite runs the broker with the dynamic-security plugin"
    await a.running.stop()  # the probe below takes A's client id, which its agent would take back
    async with station_client(a) as probe, controller_client(system) as spy:
        for topic in ("#", "cc/v1/#", "cc/v1/dev/+/cmd", topics.cmd(b.uid), topics.desired(b.uid),
                      topics.events(b.uid), topics.receipts(b.uid), "$CONTROL/dynamic-security/#"):
            (code,) = await probe.subscribe(topic, qos=1)
            assert code.value == REFUSED, f"{a.uid} was allowed to subscribe to {topic}"
        (own,) = await probe.subscribe(topics.cmd(a.uid), qos=1)
        assert own.value < REFUSED
        (receipts,) = await probe.subscribe(topics.receipts(a.uid), qos=1)
        assert receipts.value < REFUSED
        (group,) = await probe.subscribe(topics.group_cmd("commune", a.config.groups["commune"]), qos=1)
        assert group.value < REFUSED

        await spy.subscribe(f"{topics.ROOT}/#", qos=1)
        # Station A pretends to be B (a fake "offline" and a fake proof of play), tries to
        # command B as if it were the controller, then says something true about itself.
        forged = {
            topics.state(b.uid): b'{"online": false, "forged": true}',
            topics.events(b.uid): b'{"id": "forged", "kind": "play_finished"}',
            topics.cmd(b.uid): b'{"kid": "forged", "payload": "", "sig": ""}',
            topics.desired(a.uid): b'{"forged": true}',  # nor its own desired state
            # A forged receipt would make B forget proofs of play it has not delivered yet.
            topics.receipts(b.uid): b'{"ids": ["forged-receipt"]}',
            topics.receipts(a.uid): b'{"ids": ["forged-own"]}',
        }
        for topic, payload in forged.items():
            await probe.publish(topic, payload, qos=1)
        await probe.publish(topics.telemetry(a.uid), b'{"probe": true}', qos=1)
        # The broker keeps one publisher's messages in order: when the true one arrives,
        # the forged ones would have arrived before it.
        message = await first_message(spy, timeout=5)
        while message.topic.value != topics.telemetry(a.uid):
            assert message.payload not in forged.values(), f"forged message delivered on {message.topic}"
            message = await first_message(spy, timeout=5)
    # B still looks online to the operators and got no forged event.
    device_b = next(d for d in await system.api_json("GET", "/api/v1/devices") if d["uid"] == b.uid)
    assert device_b["online"] is True
    events = await system.api_json("GET", f"/api/v1/devices/{b.device_id}/events")
    assert all(e.get("id") != "forged" for e in events)
    assert b.running.agent.link.connected.is_set()


async def test_a_retired_station_is_disconnected_within_2s_and_cannot_reconnect(system: System) -> None:
    (station,) = await system.add_stations(1)
    link = station.running.agent.link
    await asyncio.wait_for(link.connected.wait(), 10)
    connections = link.connections

    loop = asyncio.get_running_loop()
    started = loop.time()
    r = await system.api("POST", f"/api/v1/devices/{station.device_id}/retire")
    assert r.status_code == 200 and r.json()["retired"] is True

    async def connected() -> bool:
        return link.connected.is_set()

    await eventually(connected, lambda up: not up, timeout=2.0, interval=0.01, what="the broker to kick it")
    assert loop.time() - started < 2.0
    with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
        async with station_client(station):
            pass
    # The agent itself keeps trying (with backoff) and keeps being refused (the probe
    # above was the first refusal in the broker's log).
    async def attempts() -> int:
        return len([line for line in system.broker.log_file.read_text().splitlines()
                    if "disconnected, not authorised" in line])

    await eventually(attempts, lambda n: n >= 3, timeout=10, what="the agent's own retries to be refused")
    assert link.connections == connections and not link.connected.is_set()
    assert all(d["uid"] != station.uid for d in await system.api_json("GET", "/api/v1/devices"))
