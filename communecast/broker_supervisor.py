"""Keeps the demo's private Mosquitto alive: a broker that dies (kill -9, a crash, the OOM
killer) is started again on the same port and files, with backoff, and the demo says so.

Why in the demo and not only in systemd: the demo is what a newcomer and a commune's trial
installation run, and a dead broker there used to stay dead until a person noticed (issue 18).
In production the service manager does this (docs/deployment.md: `Restart=always` units and
compose restart policies); the backoff is the same full jitter the stations use, so a broker
that dies at once on every start is not restarted in a tight loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from communecast.mosquitto import PrivateMosquitto
from mqtt_adapter import Backoff

log = logging.getLogger(__name__)

CHECK_PERIOD_S = 0.5  # how often the broker process is looked at
STABLE_AFTER_S = 30.0  # up this long: the next death starts the backoff from the beginning


async def supervise(broker: PrivateMosquitto, say: Callable[[str], None] = print, *,
                    backoff: Backoff | None = None) -> None:  # fmt: skip
    """Run until cancelled; restarts `broker` whenever its process has exited."""
    backoff = backoff or Backoff(base_s=0.5, cap_s=10.0)
    started = time.monotonic()
    restarts = 0
    while True:
        await asyncio.sleep(CHECK_PERIOD_S)
        code = broker.exit_code()
        if code is None:
            if time.monotonic() - started >= STABLE_AFTER_S:
                backoff.reset()
            continue
        delay = backoff.next_delay()
        say(f"Máy chủ MQTT đã dừng (mã thoát {code}); khởi động lại sau {delay:.1f} giây. "
            f"/ The MQTT broker exited (code {code}); restarting it in {delay:.1f} s.")
        await asyncio.sleep(delay)
        try:
            await asyncio.to_thread(broker.start)
        except Exception as exc:  # it may fail again (port still held, disk full): keep trying
            log.warning("broker restart failed: %s", exc)
            say(f"Khởi động lại máy chủ MQTT không thành công: {exc} / Broker restart failed: {exc}")
            continue
        restarts += 1
        started = time.monotonic()
        say(f"Máy chủ MQTT đã chạy lại (lần {restarts}). / The MQTT broker is running again "
            f"(restart {restarts}).")
