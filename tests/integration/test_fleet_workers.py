"""`sim fleet --processes P`: stations split over spawned workers, figures aggregated, clean stop.

Real: a private Mosquitto with one password-file account per station, real speaker stations
in two worker processes. Provisioning through the controller is `sim fleet`'s other half and
is exercised by the single-process path; here the configs are made directly.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from communecast.mosquitto import MosquittoNotFound, PrivateMosquitto, free_port
from controller.core.security import mosquitto_password_hash
from controller.services.broker_auth import STATION_PATTERNS, write
from device_agents.common.config import AgentConfig
from firmware_sim.fleet_workers import FleetProcesses, split


def test_split_is_contiguous_and_never_empty() -> None:
    assert split(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert split(list(range(2)), 4) == [[0], [1]]
    assert [len(c) for c in split(list(range(10_000)), 3)] == [3334, 3333, 3333]


def test_fleet_over_two_processes_connects_reports_and_stops(tmp_path: Path) -> None:
    uids = [f"spk-mp{i:03d}" for i in range(6)]
    password = "fleet-test-password"
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
    fleet = FleetProcesses(configs, 2)
    try:
        figures = fleet.start(timeout=60)
        assert figures["processes"] == 2 and figures["devices"] == 6
        assert figures["connected"] == 6 and fleet.all_connected()
        assert figures["rss_per_station_kb"] > 0 and figures["fds_per_station"] >= 1
        pids = {w["pid"] for w in fleet.workers.values()}
        assert len(pids) == 2  # its own process (and event loop) each
        procs = list(fleet._procs)
    finally:
        fleet.stop(timeout=30)
        broker.stop()
    assert all(not p.is_alive() and p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
