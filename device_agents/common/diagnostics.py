"""Remote diagnostics on a station: a closed set of signed actions, each with a result event.

Only the hardware seams are used (AudioOutput, Amplifier, the LED controller, the store,
the in-memory log buffer); there is no path from a command to a shell or to a file name.
Every action ends with one `diagnostic_result` event whose `ref` is the command's envelope
id and whose `detail` says ok/error plus what was measured (docs/operations.md).

Bulletins always win: the test tone holds the horn at `filler` priority, so any bulletin
that starts preempts it, as does a new desired state (the result then says `interrupted`,
with `interrupted_by`), and a tone or a
relay click asked for while a bulletin plays is refused as `busy`.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from device_agents.common.logbuffer import LogBuffer
from device_agents.common.store import AgentStore
from device_agents.hardware.amplifier import Amplifier, HardwareError, NoAmplifier, PowerReading
from device_agents.hardware.audio import AudioOutput, PreparedAudio
from protocol import topics
from protocol.envelope import Envelope, Rejected
from protocol.messages import EventKind, MediaRef, Priority, RejectReason, ScheduleItem, Telemetry
from protocol.ops import (
    DiagnosticAction,
    DiagnosticCommand,
    FetchLogsParams,
    LedTestPatternParams,
    RelayClickParams,
    SetVolumeParams,
    TestToneParams,
    is_known_action,
)

log = logging.getLogger(__name__)

# EX_TEMPFAIL: "try again". The service manager restarts the agent on it (docs/operations.md).
RESTART_EXIT_CODE = 75
TONE_RATE = 16000
MAX_LOG_BYTES = 60_000  # one MQTT event stays small even with 500 long lines
TEST_PATTERN = (("KIỂM TRA BẢNG - TEST 0123456789", "red"), ("KIỂM TRA BẢNG - TEST 0123456789", "green"),
                ("KIỂM TRA BẢNG - TEST 0123456789", "amber"))


class DiagnosticError(Exception):
    """An action that could not be done; `code` goes into the result's `error`."""

    def __init__(self, code: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail or {}


@dataclass
class DiagnosticHooks:
    """What an agent lends the diagnostics: its store, event writer and hardware seams."""

    uid: str
    store: AgentStore
    emit: Callable[..., None]  # agent._emit(kind, **event fields)
    publish: Callable[..., Awaitable[bool]]  # link.publish_now(topic, payload, ...)
    logs: LogBuffer
    default_volume: int = 80
    # speaker stations
    audio: AudioOutput | None = None
    amp: Amplifier | None = None
    horn: Any = None  # device_agents.speaker.horn.Horn
    playing: dict[str, str | None] = field(default_factory=dict)  # the agent's item_id -> stop reason
    relay_acquire: Callable[[], Awaitable[None]] | None = None
    relay_release: Callable[[], None] | None = None
    relay_busy: Callable[[], bool] = lambda: False
    # LED boards
    board: Any = None  # device_agents.led.driver.LedController
    board_busy: Callable[[], bool] = lambda: False
    board_overwritten: Callable[[], None] = lambda: None


def tone_pcm(frequency_hz: int, seconds: float, rate: int = TONE_RATE) -> bytes:
    """A sine at half scale with 20 ms fades (no click), S16LE mono: made here, no file."""
    n = int(seconds * rate)
    fade = int(0.02 * rate)
    step = 2 * math.pi * frequency_hz / rate
    samples = array.array("h", bytes(2 * n))
    for i in range(n):
        env = min(1.0, i / fade, (n - 1 - i) / fade) if fade else 1.0
        samples[i] = int(16383 * env * math.sin(step * i))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 3)


class Diagnostics:
    def __init__(self, hooks: DiagnosticHooks) -> None:
        self.h = hooks
        self.restart_requested = asyncio.Event()  # the runner exits with RESTART_EXIT_CODE on it
        self.exit_code: int | None = None
        self._hardware = asyncio.Lock()  # one hardware test at a time
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: dict[DiagnosticAction, Callable[[str, Any], Awaitable[dict[str, Any]]]] = {
            DiagnosticAction.TEST_TONE: self._test_tone,
            DiagnosticAction.RELAY_CLICK: self._relay_click,
            DiagnosticAction.LED_TEST_PATTERN: self._led_test_pattern,
            DiagnosticAction.SET_VOLUME: self._set_volume,
            DiagnosticAction.RESTART_AGENT: self._restart_agent,
            DiagnosticAction.FETCH_LOGS: self._fetch_logs,
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
            detail = await self._handlers[cmd.action](ref, cmd.typed_params())
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

    # -- actions -----------------------------------------------------------------------------------
    def _volume(self) -> int:
        raw = self.h.store.get("volume", str(self.h.default_volume))
        return int(raw or self.h.default_volume)

    async def _read_amp(self) -> PowerReading | None:
        amp = self.h.amp
        if amp is None or isinstance(amp, NoAmplifier):
            return None
        try:
            return await amp.read()
        except HardwareError as exc:
            log.warning("%s: amplifier read during a diagnostic failed: %s", self.h.uid, exc)
            return None

    async def _test_tone(self, ref: str, p: TestToneParams) -> dict[str, Any]:
        audio, horn = self.h.audio, self.h.horn
        if audio is None or horn is None:
            raise DiagnosticError("not_supported", "this station has no loudspeaker")
        if horn.current is not None or audio.playing:
            holder = horn.current.item_id if horn.current is not None else None
            raise DiagnosticError("busy", "a bulletin is playing; a test tone never interrupts one",
                                  {"playing": holder})
        volume = p.volume if p.volume is not None else self._volume()
        pcm = await asyncio.to_thread(tone_pcm, p.frequency_hz, p.seconds)
        prepared = PreparedAudio(pcm=pcm, rate=TONE_RATE, files=())
        item = ScheduleItem(
            item_id=f"diag-{ref[:16]}", title="test tone", start_at=datetime.now(UTC),
            priority=Priority.FILLER, media=[MediaRef(sha256="0" * 64, size=len(pcm), duration_s=p.seconds)],
        )  # fmt: skip
        async with self._hardware:
            if self.h.relay_acquire is not None:
                await self.h.relay_acquire()
            try:
                try:
                    # Free a moment ago; if a bulletin got there first, give way.
                    await asyncio.wait_for(horn.acquire(item), 0.5)
                except TimeoutError:
                    raise DiagnosticError("busy", "a bulletin took the loudspeaker first") from None
                self.h.playing[item.item_id] = None
                try:
                    idle = await self._read_amp()
                    play = asyncio.create_task(audio.play(prepared, start_at=time.time(), volume=volume))
                    during = await self._measure_while_playing(audio, play, p.seconds)
                    result = await play
                    why = self.h.playing.get(item.item_id)
                finally:
                    self.h.playing.pop(item.item_id, None)
                    await horn.release(item)
            finally:
                if self.h.relay_release is not None:
                    self.h.relay_release()
        detail: dict[str, Any] = {
            "frequency_hz": p.frequency_hz, "seconds": p.seconds, "volume": volume,
            "played_s": round(result.finished_at - result.started_at, 3), "completed": result.completed,
            "amp_current_idle_a": _num(idle.amp_current_a) if idle else None,
            "amp_current_a": _num(during.amp_current_a) if during else None,
            "relay_on": during.relay_on if during else None,
        }  # fmt: skip
        if not result.completed:
            raise DiagnosticError("interrupted", f"the tone gave way: {why or 'stopped'}",
                                  detail | {"interrupted_by": why})
        return detail

    async def _measure_while_playing(
        self, audio: AudioOutput, play: asyncio.Task[Any], seconds: float
    ) -> PowerReading | None:
        """The amplifier current a moment into the tone: a cut speaker line shows ~idle current."""
        deadline = time.monotonic() + 1.0
        while not audio.playing and not play.done() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if play.done():
            return None
        await asyncio.sleep(min(0.3, seconds / 3))
        return await self._read_amp() if audio.playing else None

    async def _relay_click(self, ref: str, p: RelayClickParams) -> dict[str, Any]:
        amp = self.h.amp
        if amp is None or isinstance(amp, NoAmplifier):
            raise DiagnosticError("not_supported", "this station has no relay board")
        async with self._hardware:
            if self.h.relay_busy():
                raise DiagnosticError("busy", "the amplifier is in use by a bulletin")
            before = (await amp.read()).relay_on
            await amp.set_power(not before)
            toggled = (await amp.read()).relay_on
            await asyncio.sleep(p.hold_s)
            restored = not self.h.relay_busy()  # a bulletin that started meanwhile keeps it on
            if restored:
                await amp.set_power(before)
                if before and self.h.relay_acquire is not None and self.h.relay_release is not None:
                    # On with no bulletin: the agent's idle switch-off may have fired during the
                    # click; re-arm it so the amplifier is not left on until the next bulletin.
                    await self.h.relay_acquire()
                    self.h.relay_release()
            after = (await amp.read()).relay_on
        detail = {"relay_before": before, "relay_toggled": toggled, "relay_after": after,
                  "hold_s": p.hold_s, "restored": restored}
        if toggled == before:
            raise DiagnosticError("relay_stuck", "the relay did not change state", detail)
        if restored and after != before:
            raise DiagnosticError("relay_stuck", "the relay did not go back", detail)
        return detail

    async def _led_test_pattern(self, ref: str, p: LedTestPatternParams) -> dict[str, Any]:
        from device_agents.led.driver import BoardContent

        board = self.h.board
        if board is None:
            raise DiagnosticError("not_supported", "this station has no LED board")
        if self.h.board_busy():
            raise DiagnosticError("busy", "the board shows an emergency message")
        shown: list[str] = []
        async with self._hardware:
            try:
                for text, color in TEST_PATTERN:
                    content = BoardContent(text=text, mode="hold", color=color, priority="filler",
                                           item_ids=(f"diag-{ref[:16]}",))
                    shown.append(await board.show(content))
                    await asyncio.sleep(p.seconds / len(TEST_PATTERN))
            finally:
                self.h.board_overwritten()  # the agent puts its content back at once
        return {"frames": len(shown), "shown": shown, "colors": [c for _, c in TEST_PATTERN],
                "protocol": getattr(board, "protocol", None)}

    async def _set_volume(self, ref: str, p: SetVolumeParams) -> dict[str, Any]:
        if self.h.audio is None:
            raise DiagnosticError("not_supported", "this station has no loudspeaker")
        before = self._volume()
        self.h.store.put("volume", str(p.volume))
        tele: dict[str, Any] = {"ts": datetime.now(UTC), "volume": p.volume}
        reading = await self._read_amp()
        if reading is not None:
            tele |= {"relay_on": reading.relay_on, "mains_v": _num(reading.mains_v),
                     "amp_current_a": _num(reading.amp_current_a),
                     "cabinet_temp_c": _num(reading.cabinet_temp_c)}
        payload = Telemetry.model_validate(tele).model_dump_json().encode()
        await self.h.publish(topics.telemetry(self.h.uid), payload, qos=1)
        return {"volume_before": before, "volume": p.volume}

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
