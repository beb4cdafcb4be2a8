"""systemd's notify protocol (communecast/sd_notify.py) from a real controller process:
READY=1 only once the HTTP socket answers, WATCHDOG=1 at half of WatchdogSec, and no pings
while the process is frozen (what makes systemd restart a hung controller).
The socket is a plain Unix datagram socket standing in for systemd's."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from communecast.mosquitto import free_port
from communecast.sd_notify import Notifier


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    short = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")  # Unix socket paths are limited to 107 bytes
    path = os.path.join(short, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(short)


def _next(sock: socket.socket, timeout: float) -> str | None:
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).decode()
    except TimeoutError:
        return None


def test_notifier_is_silent_outside_systemd_and_honours_watchdog_pid(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    outside = Notifier({})
    assert not outside.enabled and outside.watchdog_s is None
    outside.ready()  # no socket: nothing happens, nothing raised
    other_pid = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_s is None  # the pings are for another process (a parent shell)
    mine = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_s == 2.0
    mine.ready("serving")
    assert _next(sock, 2) == "READY=1\nSTATUS=serving"


def test_controller_says_ready_once_serving_pings_and_stops_pinging_when_frozen(
    notify_socket: tuple[socket.socket, str], tmp_path: Path,
) -> None:
    sock, path = notify_socket
    port = free_port()
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000",
           "COMMUNECAST_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
           "COMMUNECAST_MQTT_PORT": str(free_port())}  # no broker there: READY must not wait for one
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "communecast.cli", "controller", "run",
                             "--data-dir", str(tmp_path / "data"), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        first = _next(sock, 60)
        assert first is not None and first.startswith("READY=1"), first
        # Serving already (503: no broker there), not merely started.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 503
        assert _next(sock, 2) == "WATCHDOG=1"
        assert _next(sock, 2) == "WATCHDOG=1"  # every 0.5 s

        proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(0.2)  # a ping already in the socket's queue when it stopped
            while _next(sock, 0.01) is not None:
                pass
            assert _next(sock, 1.5) is None, "a frozen controller must not ping the watchdog"
        finally:
            proc.send_signal(signal.SIGCONT)
        assert _next(sock, 2) == "WATCHDOG=1"

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)  # uvicorn re-raises SIGTERM once drained: systemd sees the exit itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_the_agent_says_ready_once_its_station_runs_and_pings_while_it_does(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`communecast agent run`'s wrapper around device_agents.runner.run_agent: READY=1 comes
    from run_agent's on_started (after the station started), pings from the agent's own loop."""
    from communecast.commands.agent import _run_notified

    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    seen_before_start: list[str | None] = []

    async def run_agent(_path: Path, *, simulate: object, on_started: Callable[[], None]) -> int:
        seen_before_start.append(_next(sock, 0.05))  # nothing until the station runs
        on_started()
        await asyncio.sleep(0.5)  # the station running; the wrapper's pings go on meanwhile
        return 75

    assert await _run_notified(run_agent, Path("unused"), None) == 75
    assert seen_before_start == [None]
    got = [m for m in iter(lambda: _next(sock, 0.2), None)]
    assert got[0] == "READY=1\nSTATUS=running" and got[-1] == "STOPPING=1"
    assert got.count("WATCHDOG=1") >= 3, got  # every 0.1 s for 0.5 s
