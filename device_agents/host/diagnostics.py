"""Remote diagnostics on a station: a closed set of signed actions, each with a result event.

Only the hardware seams are used (AudioOutput, Amplifier, the LED controller, the store,
the in-memory log buffer); there is no path from a command to a shell or to a file name.
Every action ends with one `diagnostic_result` event whose `ref` is the command's envelope
id and whose `detail` says ok/error plus what was measured (docs/operations.md).

This is the host's part: checking and running a command, the actions every station has
(restart, logs) and the restart request. The hardware actions are the role's
(device_agents/speaker/diagnostics.py, device_agents/led/diagnostics.py); an action the
station's role does not have is answered `not_supported`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from device_agents.common.logbuffer import LogBuffer
from device_agents.common.store import AgentStore
from device_agents.hardware.amplifier import HardwareError
from protocol.envelope import Envelope, Rejected
from protocol.messages import EventKind, RejectReason
from protocol.ops import DiagnosticAction, DiagnosticCommand, FetchLogsParams, is_known_action

log = logging.getLogger(__name__)

# EX_TEMPFAIL: "try again". The service manager restarts the agent on it (docs/operations.md).
RESTART_EXIT_CODE = 75
MAX_LOG_BYTES = 60_000  # one MQTT event stays small even with 500 long lines

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]

# What a station without the hardware an action needs answers (the action is in the enum).
MISSING_HARDWARE = {
    DiagnosticAction.TEST_TONE: "this station has no loudspeaker",
    DiagnosticAction.SET_VOLUME: "this station has no loudspeaker",
    DiagnosticAction.RELAY_CLICK: "this station has no relay board",
    DiagnosticAction.LED_TEST_PATTERN: "this station has no LED board",
}


class DiagnosticError(Exception):
    """An action that could not be done; `code` goes into the result's `error`."""

    def __init__(self, code: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail or {}


@dataclass
class HostHooks:
    """What the host lends its diagnostics: the store (outbox), the event writer, the log buffer."""

    uid: str
    store: AgentStore
    emit: Callable[..., None]  # EventLog.emit(kind, **event fields)
    logs: LogBuffer


class Diagnostics:
    def __init__(self, hooks: HostHooks, role_actions: Mapping[DiagnosticAction, Handler]) -> None:
        self.h = hooks
        self.restart_requested = asyncio.Event()  # the runner exits with RESTART_EXIT_CODE on it
        self.exit_code: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: dict[DiagnosticAction, Handler] = {
            DiagnosticAction.RESTART_AGENT: self._restart_agent,
            DiagnosticAction.FETCH_LOGS: self._fetch_logs,
            **role_actions,
        }

    # -- entry -----------------------------------------------------------------------------------
    def accept(self, env: Envelope) -> None:
        """Check the (already verified) command and start it; raise Rejected when it is not one.

        An action outside the enum is `unsupported`; params out of bounds are `malformed`.
        Either way nothing runs, and the agent reports the rejection with this envelope's id.
        """
        action = env.body.get("action")
        if not is_known_action(action):
            raise Rejected(RejectReason.UNSUPPORTED, f"diagnostic action {str(action)[:40]!r} does not exist",
                           env.id)
        try:
            cmd = DiagnosticCommand.parse(env.body)
        except ValueError as exc:
            raise Rejected(RejectReason.MALFORMED, f"diagnostic {action}: {str(exc)[:200]}", env.id) from exc
        task = asyncio.get_running_loop().create_task(self._run(env.id, cmd), name=f"diag-{action}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, ref: str, cmd: DiagnosticCommand) -> None:
        started = time.monotonic()
        ok, error, message = True, None, None
        try:
            handler = self._handlers.get(cmd.action)
            if handler is None:
                missing = MISSING_HARDWARE.get(cmd.action, "not on this station")
                raise DiagnosticError("not_supported", missing)
            detail = await handler(ref, cmd.typed_params())
        except DiagnosticError as exc:
            ok, error, message, detail = False, exc.code, str(exc), exc.detail
        except HardwareError as exc:
            ok, error, message, detail = False, "hardware", str(exc), {}
        except Exception as exc:
            log.exception("%s: diagnostic %s failed", self.h.uid, cmd.action)
            ok, error, message, detail = False, "internal", f"{exc.__class__.__name__}: {exc}", {}
        detail = {**detail, "action": cmd.action.value, "ok": ok, "error": error, "message": message,
                  "elapsed_s": round(time.monotonic() - started, 3)}
        log.info("%s: diagnostic %s %s%s", self.h.uid, cmd.action.value, "ok" if ok else "failed: ",
                 "" if ok else message)
        self.h.emit(EventKind.DIAGNOSTIC_RESULT, ref=ref, reason=error, detail=detail)
        if ok and cmd.action is DiagnosticAction.RESTART_AGENT:
            await self.request_restart()

    async def request_restart(self, *, flush_timeout: float = 5.0) -> None:
        """Let the outbox deliver the last events (bounded), then ask the runner to exit."""
        deadline = time.monotonic() + flush_timeout
        while self.h.store.outbox_size() > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self.exit_code = RESTART_EXIT_CODE
        log.warning("%s: restart requested; exiting with code %d for the service manager",
                    self.h.uid, RESTART_EXIT_CODE)
        self.restart_requested.set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- the actions every station has ---------------------------------------------------------------
    async def _restart_agent(self, ref: str, p: Any) -> dict[str, Any]:
        return {"exit_code": RESTART_EXIT_CODE}

    async def _fetch_logs(self, ref: str, p: FetchLogsParams) -> dict[str, Any]:
        lines = self.h.logs.tail(p.lines)
        total = sum(len(line) + 1 for line in lines)
        truncated = 0
        while lines and total > MAX_LOG_BYTES:
            total -= len(lines.pop(0)) + 1
            truncated += 1
        return {"lines": lines, "count": len(lines), "dropped_for_size": truncated}
