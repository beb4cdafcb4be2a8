"""A whole communecast system on one machine, for the test suite and the benchmarks.

A private Mosquitto (auth on), the controller as a real subprocess (so it can be
killed and restarted), and simulated stations in this process provisioned through the
REST API, each with its firmware simulator on a real pty.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from communecast import http_clients
from communecast.mosquitto import PrivateMosquitto, free_port
from communecast.stations import ApiClient, provision
from device_agents.common.config import AgentConfig
from device_agents.runner import RunningStation
from firmware_sim.audio_sink import SimAudioSink
from firmware_sim.bench import start_simulated_station
from testkit.zygote import FORK_ENV, ForkedProcess, Zygote

CONTROLLER_USER = "communecast-controller"


@dataclass
class Station:
    device_id: int
    config: AgentConfig
    running: RunningStation

    @property
    def uid(self) -> str:
        return self.config.uid

    @property
    def sink(self) -> SimAudioSink:
        return self.running.hardware.sink  # type: ignore[union-attr]


@dataclass
class ControllerProcess:
    env: dict[str, str]
    log_path: Path
    base_url: str
    proc: subprocess.Popen[bytes] | ForkedProcess | None = None
    # Forked from a pre-imported process where the test suite asks for it (testkit/zygote.py);
    # benchmarks start it as the command line does, so that their figures are that start's.
    fork: bool = field(default_factory=lambda: os.environ.get(FORK_ENV) == "1")

    def start(self) -> None:
        env = {**os.environ, **self.env}
        if self.fork:
            self.proc = Zygote.shared().spawn(env, self.log_path)
            return
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "communecast.cli", "controller", "run"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    async def wait_healthy(self, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with http_clients.client(self.base_url, timeout=2) as http:
            while loop.time() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"controller exited; log:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise TimeoutError(f"controller not healthy in {timeout}s; log:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


# Above this many stations a benchmark's broker keeps accounts in password/ACL files: the
# dynamic-security plugin rewrites its whole file after every account change, so creating
# 10,000 accounts in one go costs it minutes (docs/scaling.md, "Broker accounts").
DYNSEC_FLEET_LIMIT = 1000  # 2,000 took over the 120 s client timeout on a slow day


def broker_dynsec_for(stations: int) -> bool | None:
    return None if stations <= DYNSEC_FLEET_LIMIT else False


@dataclass
class System:
    root: Path
    database_url: str
    controller_env: dict[str, str] = field(default_factory=dict)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    mqtt_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    stations: list[Station] = field(default_factory=list)
    communes: list[dict[str, Any]] = field(default_factory=list)
    # The communes created on an empty controller (POST /api/v1/areas bodies: name, code,
    # former_names...), all in one group of communes; stations go round-robin over them.
    commune_specs: list[dict[str, Any]] = field(default_factory=lambda: [
        {"name": "Xã Hợp Hòa"}, {"name": "Xã Kim Long"}])
    group: dict[str, Any] | None = None  # the group of those communes, once created
    # Agent settings for every station added (e.g. telemetry_interval_s for health tests).
    agent_overrides: dict[str, Any] = field(default_factory=dict)
    # MQTT over TLS for the controller and every station (docs/enrollment.md, TLS); plain_mqtt=False
    # also drops the broker's unencrypted listener.
    tls: bool = False
    plain_mqtt: bool = True
    # None: the dynamic-security plugin where it is installed; False: password/ACL files (a
    # benchmark provisioning thousands of accounts at once: docs/scaling.md, "Broker accounts").
    broker_dynsec: bool | None = None

    def __post_init__(self) -> None:
        self.broker = PrivateMosquitto(
            self.root / "broker", port=free_port(),
            controller_user=CONTROLLER_USER, controller_password=self.mqtt_password,
            tls_port=free_port() if self.tls else None, plain=self.plain_mqtt, dynsec=self.broker_dynsec,
            station_port=free_port(),  # password files only: stations bound to their client id there
        )  # fmt: skip
        tls_env: dict[str, str] = {}
        if self.broker.tls_port is not None:
            tls_env = {"COMMUNECAST_MQTT_PORT": str(self.broker.tls_port), "COMMUNECAST_MQTT_TLS": "true",
                       "COMMUNECAST_MQTT_CA_FILE": str(self.broker.ca_file),
                       "COMMUNECAST_AGENT_MQTT_TLS": "true"}
            self.agent_overrides = {"mqtt_tls": True, "mqtt_ca_file": self.broker.ca_file,
                                    **self.agent_overrides}
        http_port = free_port()
        self.controller = ControllerProcess(
            env={
                "COMMUNECAST_DATA_DIR": str(self.root / "controller"),
                "COMMUNECAST_DATABASE_URL": self.database_url,
                "COMMUNECAST_HTTP_PORT": str(http_port),
                "COMMUNECAST_MQTT_PORT": str(self.broker.port),
                "COMMUNECAST_MQTT_USERNAME": CONTROLLER_USER,
                "COMMUNECAST_MQTT_PASSWORD": self.mqtt_password,
                # Dynamic security where the plugin exists (accounts changed live, retire
                # kicks at once); otherwise the password/ACL files and SIGHUP.
                **({"COMMUNECAST_BROKER_DYNSEC": "true"} if self.broker.dynsec else {
                    "COMMUNECAST_BROKER_AUTH_DIR": str(self.broker.directory),
                    "COMMUNECAST_BROKER_PID_FILE": str(self.broker.pid_file),
                    **({"COMMUNECAST_AGENT_MQTT_PORT": str(self.broker.station_port)}
                       if self.broker.station_port is not None and self.broker.tls_port is None else {}),
                }),
                "COMMUNECAST_ADMIN_PASSWORD": self.admin_password,
                **tls_env,
                **self.controller_env,
            },
            log_path=self.root / "controller.log",
            base_url=f"http://127.0.0.1:{http_port}",
        )
        self._api: ApiClient | None = None

    @property
    def base_url(self) -> str:
        return self.controller.base_url

    @property
    def token(self) -> str:
        """The admin's bearer token, for clients of this system's API (`testkit.api.Api`, ApiClient)."""
        if self._api is None:
            raise RuntimeError("the system is not started: no token yet")
        return self._api.token

    @property
    def signing_key_path(self) -> Path:
        return self.root / "controller" / "keys" / "controller_ed25519.pem"

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        try:
            self.controller.start()
            await self.controller.wait_healthy()
            self._api = await ApiClient.login(self.base_url, "admin", self.admin_password)
            await self._ensure_areas()
        except BaseException:  # no broker or controller left running behind a failed start
            await self.stop()
            raise

    async def _ensure_areas(self) -> None:
        self.communes = [a for a in await self.api_json("GET", "/api/v1/areas") if a["level"] == "commune"]
        if self.communes:
            return
        # Two-tier (docs/areas.md): communes directly under the province, a group of them.
        province = await self.api_json("POST", "/api/v1/areas",
                                       json={"level": "province", "name": "Tỉnh Phú Thọ", "code": "25"})
        for spec in self.commune_specs:
            self.communes.append(await self.api_json("POST", "/api/v1/areas", json={
                "level": "commune", "parent_id": province["id"], **spec}))
        self.group = await self.api_json("POST", "/api/v1/areas", json={
            "level": "group", "name": "Khu vực Tam Dương (huyện cũ)", "parent_id": province["id"],
            "commune_ids": [c["id"] for c in self.communes]})

    async def restart_controller(self, *, down_for: float = 0.0) -> None:
        self.controller.stop()
        await asyncio.sleep(down_for)
        self.controller.start()
        await self.controller.wait_healthy()

    async def api(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth and self._api is not None:
            headers["Authorization"] = f"Bearer {self._api.token}"
        async with http_clients.client(self.base_url, timeout=60) as http:
            return await http.request(method, path, headers=headers, **kwargs)

    async def api_json(self, method: str, path: str, **kwargs: Any) -> Any:
        r = await self.api(method, path, **kwargs)
        if r.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {r.status_code}: {r.text}")
        return r.json()

    async def add_stations(self, count: int, *, mqtt_port: int | None = None) -> list[Station]:
        """Provision `count` more speaker stations and start them (optionally via a proxy port)."""
        assert self._api is not None
        have = len(self.stations)
        configs = await provision(self._api, have + count, self.root / "stations", first=have)
        devices = {d["uid"]: d["id"] for d in await self.api_json("GET", "/api/v1/devices")}
        added = []
        for cfg in configs:
            if mqtt_port is not None:
                cfg = cfg.model_copy(update={"mqtt_port": mqtt_port})
            if self.agent_overrides:
                cfg = cfg.model_copy(update=self.agent_overrides)
            running = await start_simulated_station(cfg)
            added.append(Station(devices[cfg.uid], cfg, running))
        self.stations += added
        return added

    async def stop(self) -> None:
        for st in self.stations:
            with contextlib.suppress(Exception):
                await st.running.stop()
        self.controller.stop()
        self.broker.stop()
