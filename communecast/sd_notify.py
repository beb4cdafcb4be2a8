"""systemd's notify protocol (sd_notify(3)): READY=1 once serving, WATCHDOG=1 while alive.

A datagram on the Unix socket named by $NOTIFY_SOCKET ('@' for the abstract namespace); no
library needed and none installed on a Pi. Outside systemd (no NOTIFY_SOCKET) every call is a
no-op, so the same code runs under the demo, the tests and a terminal.

The pings come from a task on the event loop that does the work: a loop blocked by a stuck
call stops them and systemd restarts the process after WatchdogSec. They are deliberately not
tied to the broker: a broker outage is the broker unit's business, and restarting every
controller and station over it would only add a reconnect storm (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET") or None
        self._address = ("\0" + path[1:]) if path and path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        mine = pid is None or pid == str(os.getpid())
        self.watchdog_s: float | None = int(usec) / 1e6 if usec and usec.isdigit() and mine else None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> None:
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:  # systemd gone or the socket not ours: never fatal
            log.warning("sd_notify to %s failed: %s", self._address, exc)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    async def keep_alive(self) -> None:
        """WATCHDOG=1 at half of WatchdogSec, for as long as this event loop runs its tasks."""
        if self.watchdog_s is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s / 2)
