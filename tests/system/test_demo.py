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
from pathlib import Path

import pytest

from communecast.mosquitto import free_port


def _start_demo(data: Path, http_port: int, mqtt_port: int) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("communecast")
    return subprocess.Popen(
        [str(exe), "demo", "--devices", "1", "--led-boards", "0", "--data-dir", str(data),
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


def test_demo_restarts_a_killed_broker_by_itself(tmp_path: Path) -> None:
    """kill -9 of the demo's broker: the demo starts it again (communecast/broker_supervisor.py),
    says so, and /healthz is 200 again within 10 s without anyone touching anything."""
    http_port, mqtt_port = free_port(), free_port()
    proc = _start_demo(tmp_path, http_port, mqtt_port)
    try:
        _wait_for_banner(proc)
        deadline = time.monotonic() + 30
        while _health(http_port) != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _health(http_port) == 200
        pid_file = tmp_path / "broker" / "mosquitto.pid"
        first = int(pid_file.read_text())
        os.kill(first, signal.SIGKILL)
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
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "restarting it in" in out and "running again (restart 1)" in out, out[-3000:]
    print(f"healthy again {healthy_after:.1f} s after kill -9 of the broker")
