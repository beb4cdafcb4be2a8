"""`communecast demo` stops everything it started, however it is stopped.

A demo stopped from outside (SIGTERM from a service manager, SIGINT from Ctrl-C) used to leave
its private Mosquitto running, and the next demo failed with "Address already in use".
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from communecast.mosquitto import free_port
from tests.support.audio import tone


def _start_demo(data: Path, http_port: int, mqtt_port: int, devices: int = 1) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("communecast")
    return subprocess.Popen(
        [str(exe), "demo", "--devices", str(devices), "--led-boards", "0", "--data-dir", str(data),
         "--http-port", str(http_port), "--mqtt-port", str(mqtt_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _wait_for_banner(proc: subprocess.Popen[str], timeout: float = 90.0) -> str:
    """The demo's output up to its "Ctrl-C to stop" line (it is running then)."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "Ctrl-C to stop" in line:
            return "".join(seen)
    proc.kill()
    raise AssertionError("the demo did not start:\n" + "".join(seen)[-3000:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def _port_free(port: int) -> bool:
    """Free for a new server (which, like Mosquitto and uvicorn, sets SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_demo_stopped_by_a_signal_stops_its_broker(tmp_path: Path, sig: signal.Signals) -> None:
    http_port, mqtt_port = free_port(), free_port()
    proc = _start_demo(tmp_path, http_port, mqtt_port)
    _wait_for_banner(proc)
    broker_pid = int((tmp_path / "broker" / "mosquitto.pid").read_text())
    assert _alive(broker_pid)

    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    deadline = time.monotonic() + 10
    while _alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(broker_pid), f"the demo's broker (pid {broker_pid}) outlived the demo"
    assert _port_free(mqtt_port) and _port_free(http_port)


def test_demo_after_a_killed_demo_starts_again(tmp_path: Path) -> None:
    """kill -9 leaves the broker behind; the next demo on the same data dir stops it and runs."""
    http_port, mqtt_port = free_port(), free_port()
    first = _start_demo(tmp_path, http_port, mqtt_port)
    _wait_for_banner(first)
    leftover = int((tmp_path / "broker" / "mosquitto.pid").read_text())
    first.kill()
    first.communicate(timeout=30)
    assert _alive(leftover)  # what used to make the next demo fail

    second = _start_demo(tmp_path, http_port, mqtt_port)
    try:
        out = _wait_for_banner(second)
        assert "earlier run left behind" in out
        assert not _alive(leftover)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
    assert second.returncode == 0


def _health(http_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=3) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _admin(tmp_path: Path, http_port: int) -> httpx.Client:
    """The demo's admin, logged in through the API."""
    password = (tmp_path / "secrets" / "admin-password").read_text().strip()
    http = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30)
    token = http.post("/api/v1/auth/token", data={"username": "admin", "password": password})
    assert token.status_code == 200, token.text
    http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return http


def _send(http: httpx.Client, sha: str, seconds_ahead: float, title: str) -> int:
    start = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    r = http.post("/api/v1/broadcasts", json={"title": title, "media_sha256": sha, "targets": {"all": True},
                                              "start_at": start.isoformat()})  # fmt: skip
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_demo_restarts_a_killed_broker_by_itself(tmp_path: Path) -> None:
    """kill -9 of the demo's broker: the demo starts it again (communecast/broker_supervisor.py),
    says so, and /healthz is 200 again within 10 s without anyone touching anything. A bulletin
    scheduled before the kill to start across the outage, and one sent while the broker was
    dead, both play on every station once each."""
    http_port, mqtt_port = free_port(), free_port()
    proc = _start_demo(tmp_path, http_port, mqtt_port, devices=3)
    try:
        _wait_for_banner(proc)
        deadline = time.monotonic() + 30
        while _health(http_port) != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _health(http_port) == 200
        http = _admin(tmp_path, http_port)
        audio = tone(tmp_path / "t.wav", seconds=1).read_bytes()
        sha = http.post("/api/v1/media", files={"file": ("t.wav", audio)})
        assert sha.status_code == 201, sha.text
        across = _send(http, sha.json()["sha256"], 4, "Lịch phát qua sự cố máy chủ MQTT")
        deadline = time.monotonic() + 10
        while http.get(f"/api/v1/broadcasts/{across}").json()["acked"] < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert http.get(f"/api/v1/broadcasts/{across}").json()["acked"] == 3
        pid_file = tmp_path / "broker" / "mosquitto.pid"
        first = int(pid_file.read_text())
        os.kill(first, signal.SIGKILL)
        during = _send(http, sha.json()["sha256"], 3, "Gửi khi máy chủ MQTT vừa chết")
        killed_at = time.monotonic()
        saw_down = False
        healthy_after: float | None = None
        while time.monotonic() - killed_at < 10:
            status = _health(http_port)
            saw_down = saw_down or status == 503
            if saw_down and status == 200:
                healthy_after = time.monotonic() - killed_at
                break
            time.sleep(0.1)
        assert saw_down, "/healthz never noticed the dead broker"
        assert healthy_after is not None, "not healthy again within 10 s of kill -9"
        second = int(pid_file.read_text())
        assert second != first and _alive(second)
        for bc in (across, during):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rows = http.get("/api/v1/play-log", params={"broadcast_id": bc}).json()
                if len(rows) == 3 and all(r["status"] == "played" for r in rows):
                    break
                time.sleep(0.2)
            assert sorted((r["device_id"], r["status"]) for r in rows) == [
                (d, "played") for d in sorted({r["device_id"] for r in rows})], rows
            assert len(rows) == 3, f"broadcast {bc}: {rows}"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "restarting it in" in out and "running again (restart 1)" in out, out[-3000:]
    print(f"healthy again {healthy_after:.1f} s after kill -9 of the broker")
