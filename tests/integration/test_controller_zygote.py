"""The suite's controllers are forked from a pre-imported process (testkit/zygote.py): a child
started with a refused setting is seen to end, with its exit status and its reason in its own
log, and a running one stops on SIGTERM within the harness's wait, as a command-line start does."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from communecast.mosquitto import free_port
from testkit.zygote import Zygote


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "COMMUNECAST_DATA_DIR": str(tmp_path / "ctl"),
            "COMMUNECAST_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
            "COMMUNECAST_HTTP_PORT": str(free_port()), "COMMUNECAST_MQTT_PORT": str(free_port()), **extra}


def test_a_forked_controller_that_cannot_start_ends_with_its_reason_in_its_log(tmp_path: Path) -> None:
    log = tmp_path / "bad.log"
    child = Zygote.shared().spawn(_env(tmp_path, COMMUNECAST_PASSWORD_SCRYPT_N="1000"), log)
    assert child.wait(timeout=30) not in (0, None)
    assert "password_scrypt_n" in log.read_text()


def test_a_forked_controller_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "ok.log"
    child = Zygote.shared().spawn(_env(tmp_path), log)
    deadline = time.monotonic() + 30
    while "Uvicorn running" not in log.read_text() and time.monotonic() < deadline:
        assert child.poll() is None, log.read_text()[-2000:]
        time.sleep(0.05)
    assert "Uvicorn running" in log.read_text()
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=15) is not None
    assert child.poll() is not None
