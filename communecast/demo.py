"""`communecast demo`: a private broker (auth on), the controller on SQLite, simulated stations.

Zero configuration: everything lives in --data-dir and survives a restart of the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from communecast import http_clients
from communecast.broker_supervisor import supervise
from communecast.mosquitto import PrivateMosquitto, free_port
from communecast.stations import ApiClient, provision, provision_led, run_simulated
from controller.app import create_app
from controller.core.config import Settings
from controller.core.security import mosquitto_password_hash
from controller.db.session import Database
from controller.services import broker_auth, seed

CONTROLLER_USER = "communecast-controller"


@dataclass(frozen=True)
class DemoOptions:
    devices: int = 3
    http_port: int = 8080
    mqtt_port: int = 18830
    data_dir: Path = Path("./demo-data")
    admin_password: str | None = None
    led_boards: int = 3  # simulated LED boards next to the speakers (alpha, bx5k, bitmap in turn)


def _secret(path: Path, given: str | None = None) -> str:
    """A secret kept in the data dir (owner-only), so restarts keep working."""
    if given:
        return given
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


async def run_demo(opts: DemoOptions) -> None:
    data = opts.data_dir.resolve()
    admin_password = _secret(data / "secrets" / "admin-password", opts.admin_password)
    mqtt_password = _secret(data / "secrets" / "mqtt-controller-password")
    broker = PrivateMosquitto(
        data / "broker", port=opts.mqtt_port,
        controller_user=CONTROLLER_USER, controller_password=mqtt_password,
        station_port=free_port(),  # password files only: each station bound to its own client id
    )  # fmt: skip
    settings = Settings(
        data_dir=data / "controller", http_port=opts.http_port, http_host="127.0.0.1",
        mqtt_host="127.0.0.1", mqtt_port=opts.mqtt_port,
        mqtt_username=CONTROLLER_USER, mqtt_password=mqtt_password,
        broker_dynsec=broker.dynsec,
        broker_auth_dir=None if broker.dynsec else broker.directory,
        broker_pid_file=None if broker.dynsec else broker.pid_file,
        agent_mqtt_port=broker.station_port,
    )  # fmt: skip

    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as s:
        seed.ensure_demo_areas(s)
        seed.ensure_admin(s, admin_password)
        controller_hash = mosquitto_password_hash(mqtt_password)
        passwd, acl = broker_auth.render(s, CONTROLLER_USER, controller_hash)
        dynsec = broker_auth.render_dynsec(s, CONTROLLER_USER, controller_hash)
    db.dispose()
    if broker.dynsec:  # the database is the source of truth for every account
        broker_auth.write_dynsec(broker.dynsec_file, dynsec)
    else:
        broker_auth.write(broker.directory, passwd, acl)
    server = _Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=opts.http_port,
                       log_level="warning", access_log=False)
    )  # fmt: skip
    stop = _stop_on_signals()
    stations: list[Any] = []
    server_task: asyncio.Task[None] | None = None
    startup: asyncio.Task[None] | None = None
    supervisor: asyncio.Task[None] | None = None
    try:
        broker.start()
        supervisor = asyncio.create_task(supervise(broker, lambda line: print(line, flush=True)))
        server_task = asyncio.create_task(server.serve())
        startup = asyncio.create_task(
            _start_stations(settings.base_url, admin_password, opts, data, stations)
        )
        await _first(stop.wait(), server_task, startup)
        if startup.done() and not stop.is_set():
            startup.result()  # a failed start ends the demo with its error
            await _first(stop.wait(), server_task)
    finally:
        if startup is not None and not startup.done():
            startup.cancel()
            with contextlib.suppress(BaseException):
                await startup
        for st in stations:
            with contextlib.suppress(Exception):
                await st.stop()
        if server_task is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await server_task
        if supervisor is not None:  # before the broker stops: its stop is no death to repair
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        broker.stop()


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: it re-raises SIGTERM after shutting down, which
    killed the demo before it could stop its broker. The demo owns SIGINT/SIGTERM instead."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def _stop_on_signals() -> asyncio.Event:
    """Ctrl-C or SIGTERM set the event; the demo then stops stations, server and broker."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _first(*aws: Any) -> None:
    """Wait until any of these finishes (the others keep running)."""
    tasks = [a if isinstance(a, asyncio.Future) else asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t, a in zip(tasks, aws, strict=True):
            if t is not a:  # helpers made here (stop.wait()) die here
                t.cancel()


async def _start_stations(
    base_url: str, admin_password: str, opts: DemoOptions, data: Path, stations: list[Any]
) -> None:
    """Provision and start the simulated stations; `stations` fills as they start."""
    await _wait_healthy(base_url)
    api = await ApiClient.login(base_url, "admin", admin_password)
    configs = await provision(api, opts.devices, data / "stations")
    stations += await run_simulated(configs)
    stations += await run_simulated(await provision_led(api, opts.led_boards, data / "boards"))
    _banner(base_url, admin_password, opts, data, [c.uid for c in configs])


async def _wait_healthy(base_url: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with http_clients.client(base_url, timeout=2) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"controller at {base_url} did not become healthy")
            await asyncio.sleep(0.1)


def _banner(url: str, password: str, opts: DemoOptions, data: Path, uids: list[str]) -> None:
    print(
        f"""
communecast demo đang chạy / is running
  Bảng điều khiển / API : {url}   (tài liệu API / API docs: {url}/docs)
  Đăng nhập / Login     : admin / {password}
  MQTT broker (auth on) : 127.0.0.1:{opts.mqtt_port}
  Trạm loa mô phỏng     : {len(uids)} ({", ".join(uids)})
  Dữ liệu / data dir    : {data}
  Âm thanh đã phát / what the simulated horns played: {data}/stations/<uid>/sim/playbacks.jsonl
  Bảng điện tử / LED boards: {opts.led_boards}, đang hiện / showing: {data}/boards/<uid>/sim/current.png
Nhấn Ctrl-C để dừng / Ctrl-C to stop.""",
        flush=True,
    )
