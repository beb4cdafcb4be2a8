"""After a broker restart, 200 stations come back spread out, not in lockstep (issue 18).

Real: a private Mosquitto with one password-file account per station and 200 speaker agents
(the fleet simulator, one event loop). The broker is stopped under them and started again on
the same port; each station's reconnect instant (`AgentLink.connected_at`) is recorded. With
the old fixed ladder (0.2, 0.4, 0.8 … s) every station retried at the same instants; with
full jitter (mqtt_adapter/backoff.py) they spread over the window.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from communecast.mosquitto import MosquittoNotFound, PrivateMosquitto, free_port
from controller.core.security import mosquitto_password_hash
from controller.services.broker_auth import STATION_PATTERNS, write
from device_agents.common.config import AgentConfig
from firmware_sim.fleet import Fleet
from testkit.waiting import eventually

STATIONS = 200
SLICE_S = 0.1


async def _tick() -> None:
    await asyncio.sleep(0)


def _busiest_slice(instants: list[float]) -> int:
    """The most reconnects inside any SLICE_S-long window."""
    instants = sorted(instants)
    best, lo = 0, 0
    for hi, t in enumerate(instants):
        while t - instants[lo] > SLICE_S:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_two_hundred_stations_come_back_spread_after_a_broker_restart(tmp_path: Path) -> None:
    uids = [f"spk-rc{i:03d}" for i in range(STATIONS)]
    password = "reconnect-test-password"
    digest = mosquitto_password_hash(password)
    broker_dir = tmp_path / "broker"
    write(broker_dir, "ctl:" + mosquitto_password_hash("x") + "\n" + "".join(f"{u}:{digest}\n" for u in uids),
          "\n".join(STATION_PATTERNS) + "\n")
    broker = PrivateMosquitto(broker_dir, port=free_port(), controller_user="ctl", controller_password="x",
                              dynsec=False)
    try:
        broker.start()
    except MosquittoNotFound as exc:
        pytest.skip(str(exc))
    key = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    configs = [(i, AgentConfig(uid=u, mqtt_port=broker.port, mqtt_username=u, mqtt_password=password,
                               controller_url="http://127.0.0.1:9", controller_public_keys=[key],
                               data_dir=tmp_path / "fleet" / u)) for i, u in enumerate(uids)]
    fleet = Fleet(configs)
    try:
        await fleet.start(connect_timeout=120)
        links = [st.agent.link for st in fleet.stations]
        assert all(link.connections == 1 for link in links)

        broker.stop()
        await eventually(_tick, lambda _: fleet.connected() == 0, timeout=60,
                         what="every station to notice the broker is gone")  # fmt: skip
        back_up = time.time()
        broker.start()
        await eventually(_tick, lambda _: fleet.connected() == STATIONS, timeout=90,
                         what=f"all {STATIONS} stations back")  # fmt: skip
    finally:
        await fleet.stop()
        broker.stop()

    assert [link.connections for link in links] == [2] * STATIONS  # none gave up, none flapped
    instants = [t for t in (link.connected_at for link in links) if t is not None]
    assert len(instants) == STATIONS and min(instants) >= back_up
    busiest = _busiest_slice(instants)
    spread = max(instants) - min(instants)
    print(f"{STATIONS} stations back within {max(instants) - back_up:.2f} s of the broker's start; "
          f"busiest {SLICE_S * 1000:.0f} ms: {busiest}; first to last {spread:.2f} s")
    assert busiest < STATIONS * 2 // 3, f"{busiest} of {STATIONS} stations reconnected within {SLICE_S} s"
    assert busiest <= STATIONS // 4, f"lockstep: {busiest} of {STATIONS} within {SLICE_S} s"
