"""A private Mosquitto with one password-file account per station, and the stations' agent
configs, made directly (no controller): for tests of fleets and the broker link alone."""

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


def started_broker_with_stations(
    root: Path, uids: list[str], password: str,
) -> tuple[PrivateMosquitto, list[tuple[int, AgentConfig]]]:  # fmt: skip
    """The running broker (skips the test when mosquitto is missing) and (index, config) per
    station. No controller answers: the configs name a dead controller URL and a fresh key."""
    digest = mosquitto_password_hash(password)
    broker_dir = root / "broker"
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
                               data_dir=root / "fleet" / u)) for i, u in enumerate(uids)]
    return broker, configs
