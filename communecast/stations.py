"""Provision simulated stations through the controller's REST API and run them.

Used by the demo, the docker-compose 'stations' service and the test suite: the same
path a technician's tooling takes (create station -> issue credentials -> run agent).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from communecast import http_clients
from device_agents.common.config import AgentConfig
from device_agents.runner import RunningStation
from firmware_sim.bench import Transport, start_simulated_station


@dataclass
class ApiClient:
    base_url: str
    token: str

    @classmethod
    async def login(cls, base_url: str, username: str, password: str) -> ApiClient:
        async with http_clients.client(base_url, timeout=30) as http:
            r = await http.post("/api/v1/auth/token", data={"username": username, "password": password})
            r.raise_for_status()
            return cls(base_url, r.json()["access_token"])

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with http_clients.client(self.base_url, timeout=60) as http:
            r = await http.request(
                method, path, headers={"Authorization": f"Bearer {self.token}"}, **kwargs
            )
            r.raise_for_status()
            return r.json()


async def provision(
    api: ApiClient, count: int, data_dir: Path, *, first: int = 0, name_prefix: str = "Cụm loa"
) -> list[AgentConfig]:
    """Make sure `count` speaker stations exist; issue fresh credentials to those from `first` on.

    Issuing credentials rotates the broker password, so stations already running are skipped.
    """
    return await _provision(
        api, "speaker", count, data_dir, first,
        body_for=lambda i, commune: {
            "name": f"{name_prefix} {i + 1:02d} – {commune['name']}",
            "lat": 21.35 + 0.01 * i, "lon": 105.55 + 0.01 * i,
        },
        config_for=lambda i: {},
    )  # fmt: skip


async def provision_led(
    api: ApiClient, count: int, data_dir: Path, *, protocols: tuple[str, ...] = ("alpha", "bx5k", "bitmap"),
    first: int = 0, name_prefix: str = "Bảng điện tử",
) -> list[AgentConfig]:
    """Like `provision`, for LED boards; board i speaks protocols[i % len] (docs/led.md)."""
    return await _provision(
        api, "led", count, data_dir, first,
        body_for=lambda i, commune: {
            "name": f"{name_prefix} {i + 1:02d} – {commune['name']}",
            "tags": ["led", protocols[i % len(protocols)]],
        },
        config_for=lambda i: {"led_protocol": protocols[i % len(protocols)]},
    )  # fmt: skip


async def _provision(
    api: ApiClient,
    kind: str,
    count: int,
    data_dir: Path,
    first: int,
    *,
    body_for: Callable[[int, dict[str, Any]], dict[str, Any]],
    config_for: Callable[[int], dict[str, Any]],
) -> list[AgentConfig]:
    """Create missing stations of `kind` round-robin over the communes, then issue configs."""
    communes = [a for a in await api.call("GET", "/api/v1/areas") if a["level"] == "commune"]
    if not communes:
        raise RuntimeError("the controller has no communes yet")
    devices = [d for d in await api.call("GET", "/api/v1/devices") if d["kind"] == kind]
    for i in range(len(devices), count):
        commune = communes[i % len(communes)]
        body = {"kind": kind, "commune_id": commune["id"], **body_for(i, commune)}
        devices.append(await api.call("POST", "/api/v1/devices", json=body))
    configs = []
    for i, device in enumerate(devices[first:count], start=first):
        issued = await api.call("POST", f"/api/v1/devices/{device['id']}/credentials")
        cfg = AgentConfig(**issued["agent_config"], data_dir=data_dir / issued["agent_config"]["uid"],
                          **config_for(i))
        cfg.save(cfg.data_dir / "config.json")
        configs.append(cfg)
    return configs


async def run_simulated(configs: list[AgentConfig], sim_transport: Transport = "tcp") -> list[RunningStation]:
    """Stations with simulated cabinets on a TCP serial line (`socket://`, the same RTU bytes).

    Not a pty: a pty number freed by a stopped station can be handed out again while a stale
    descriptor still holds pymodbus's exclusive lock on the old line, and the new station's
    agent then never opens its port (seen when a simulator process restarts a station).
    """
    return list(await asyncio.gather(*(start_simulated_station(c, sim_transport=sim_transport)
                                       for c in configs)))


async def run_fleet_from_api(
    controller_url: str, username: str, password: str, count: int, data_dir: Path,
    *, mqtt_host: str | None = None,
) -> None:
    """`communecast sim stations`: provision through the API, then run until interrupted."""
    api = await ApiClient.login(controller_url, username, password)
    configs = await provision(api, count, data_dir)
    if mqtt_host:
        configs = [c.model_copy(update={"mqtt_host": mqtt_host}) for c in configs]
    stations = await run_simulated(configs)
    heartbeat = os.environ.get("COMMUNECAST_SIM_HEARTBEAT_FILE")
    try:
        while True:  # the container's health check reads this file's age
            if heartbeat and any(st.agent.link.connected.is_set() for st in stations):
                Path(heartbeat).touch()
            await asyncio.sleep(15)
    finally:
        for st in stations:
            await st.stop()
