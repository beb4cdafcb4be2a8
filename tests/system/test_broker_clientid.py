"""Issue 16, item 8: one station's account cannot take another station's MQTT client id.

MQTT lets a new connection with a client id that is already connected throw the old one
off. Without a binding, station A's password plus station B's uid as client id kicked B
again and again. The broker now ties each station account to its own client id: dynamic
security refuses the connection (the account's `clientid`), the password-file fallback
replaces the client id with the username on the stations' listener
(`use_username_as_clientid`). Both modes, real Mosquitto, real agents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from controller.services.broker_auth import DynsecAdmin
from testkit.harness import CONTROLLER_USER, Station, System
from testkit.waiting import eventually

ATTACK_S = 4.0  # "several seconds" of retries


@pytest.fixture(params=["dynsec", "files"])
async def either_broker(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> AsyncIterator[System]:
    dynsec = None if request.param == "dynsec" else False
    sys_ = System(tmp_path / "system", database_url, broker_dynsec=dynsec)
    if request.param == "dynsec" and not sys_.broker.dynsec:
        pytest.skip("Mosquitto's dynamic-security plugin is not installed")
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()


async def _impersonate(system: System, a: Station, b: Station) -> tuple[int, int]:
    """Connect again and again with A's credentials and B's client id; (refused, accepted)."""
    c = a.config
    refused = accepted = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ATTACK_S
    while loop.time() < deadline:
        try:
            async with aiomqtt.Client(
                c.mqtt_host,
                c.mqtt_port,
                identifier=b.uid,
                username=c.mqtt_username,
                password=c.mqtt_password,
                clean_session=True,
                timeout=5,
            ):
                accepted += 1
                await asyncio.sleep(0.1)  # hold the connection: long enough for a takeover to land
        except aiomqtt.MqttError:
            refused += 1
            await asyncio.sleep(0.05)
    return refused, accepted


async def test_a_station_cannot_take_over_another_stations_client_id(either_broker: System) -> None:
    system = either_broker
    a, b = await system.add_stations(2)
    link_b = b.running.agent.link
    await asyncio.wait_for(link_b.connected.wait(), 10)
    await a.running.stop()  # the attacker has A's password; A's own agent is not needed
    connections = link_b.connections

    refused, accepted = await _impersonate(system, a, b)

    assert refused + accepted > 10, "the attack loop barely ran"
    if system.broker.dynsec:
        assert accepted == 0, "dynamic security accepted A's account with B's client id"
    assert link_b.connected.is_set(), f"{b.uid} was disconnected by A's connections"
    again = link_b.connections - connections
    assert again == 0, f"{b.uid} had to reconnect {again} times"


async def test_accounts_made_before_the_binding_are_bound_at_controller_start(system: System) -> None:
    """An older controller created station accounts without a client id: the next start binds them."""
    if not system.broker.dynsec:
        pytest.skip("Mosquitto's dynamic-security plugin is not installed")
    (a,) = await system.add_stations(1)
    admin = DynsecAdmin("127.0.0.1", system.broker.port, CONTROLLER_USER, system.mqtt_password)
    await admin.checked([{"command": "setClientId", "username": a.uid}])  # no clientid: unbound, as before
    assert await admin.client_ids([a.uid]) == {a.uid: ""}

    await system.restart_controller()
    bound = await eventually(
        lambda: admin.client_ids([a.uid]),
        lambda ids: ids[a.uid] == a.uid,
        timeout=30,
        what="the restarted controller to bind the account",
    )
    assert bound == {a.uid: a.uid}
