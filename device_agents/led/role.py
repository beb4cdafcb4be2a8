"""The LED-board role: signed desired state in, the right text on the board, proof reported back.

Its "play" is a reconciliation loop: what should the board show now (validity windows,
priority, rotation, night dimming; led/content.py) versus what it last acknowledged. A board
that stops answering is backed off, reported as a fault, and gets the current content again
as soon as it answers. Link, gate, store, events, diagnostics, updater, birth and telemetry
are the host's (device_agents/host/host.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from device_agents.common.config import AgentConfig
from device_agents.host.events import now
from device_agents.host.host import StationHost
from device_agents.host.role import DiagnosticHandler, RoleKit, unsupported
from device_agents.led.content import brightness_at, choose
from device_agents.led.diagnostics import LedDiagnostics
from device_agents.led.driver import BoardContent, LedController, LedError
from protocol.envelope import Envelope
from protocol.messages import DesiredState, EventKind, LedContent
from protocol.ops import DiagnosticAction

log = logging.getLogger(__name__)


class LedRole:
    def __init__(self, kit: RoleKit, board: LedController, *, tick_s: float = 0.5) -> None:
        self.cfg = kit.config
        self.uid = kit.config.uid
        self.board = board
        self.tick_s = tick_s
        self.store = kit.store
        self.events = kit.events
        self._report_state = kit.report_state
        raw = self.store.get("led_content")
        self.content = LedContent.model_validate_json(raw) if raw else LedContent()
        self.on_board: BoardContent | None = None
        self.board_shows: str | None = None  # the text exactly as the board shows it
        self.brightness: int | None = None
        self.reachable: bool | None = None
        self.last_ack_at: float | None = None
        self.temperature_c: float | None = None
        self.sends = 0
        self.failures = 0
        self.retry_delays: list[float] = []  # the backoff used after each failed attempt
        self._last_sent_at = 0.0
        self._opened = False
        self._wake = asyncio.Event()
        self.changed = asyncio.Event()  # set whenever the board's state changed (tests wait on it)
        self.diagnostics = LedDiagnostics(board, busy=self._showing_emergency,
                                          overwritten=self._board_overwritten)

    # -- the role protocol ---------------------------------------------------------------------------
    def resume(self) -> None:
        """The content came back from the store in __init__; the display loop shows it."""

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {"display": self._display_loop()}

    def reported(self) -> dict[str, Any]:
        return {"led": self._led_report()}

    def diagnostic_actions(self) -> Mapping[DiagnosticAction, DiagnosticHandler]:
        return self.diagnostics.actions()

    def apply_desired(self, state: DesiredState) -> list[str]:
        self.content = state.led or LedContent()
        self.store.put("led_content", self.content.model_dump_json())
        self._wake.set()
        return sorted(m.item_id for m in self.content.messages)

    async def command(self, env: Envelope) -> None:
        raise unsupported(env, " on an LED board")

    async def telemetry(self) -> dict[str, Any]:
        return {"cabinet_temp_c": self.temperature_c, "extra": {"led": self._led_report()},
                "led_reachable": self.reachable}

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.board.close()

    # -- reports ---------------------------------------------------------------------------------------
    def _led_report(self) -> dict[str, Any]:
        c = self.on_board
        return {
            "protocol": self.board.protocol, "text": self.board_shows or "",
            "original": c.text if c else "", "mode": c.mode if c else None,
            "color": c.color if c else None, "priority": c.priority if c else None,
            "item_ids": list(c.item_ids) if c else [], "brightness": self.brightness,
            "reachable": self.reachable, "last_ack_at": self.last_ack_at,
            "temperature_c": self.temperature_c, "width": self.cfg.led_width,
            "height": self.cfg.led_height, "pixels": self.board.can_draw_pixels,
        }  # fmt: skip

    async def _report(self) -> None:
        await self._report_state()
        self.changed.set()

    def _emit(self, kind: EventKind, **fields: Any) -> None:
        self.events.emit(kind, **fields)
        self.changed.set()

    # -- the board ---------------------------------------------------------------------------------------
    async def _display_loop(self) -> None:
        backoff = 1.0
        while True:
            try:
                await self._reconcile()
                if self.reachable is False:
                    self._emit(EventKind.FAULT, reason="led_controller_recovered",
                               detail={"cleared": True, "failures": self.failures})
                self.reachable = True
                backoff = 1.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tick_s)
                self._wake.clear()
            except LedError as exc:
                self.failures += 1
                self._opened = False
                self.on_board = None  # unknown now: send everything again once it answers
                if self.reachable is not False:
                    self.reachable = False
                    log.warning("%s: LED controller not answering (%s)", self.uid, exc)
                    self._emit(EventKind.FAULT, reason="led_controller_unreachable",
                               detail={"error": str(exc), "protocol": self.board.protocol})
                    await self._report()
                self.retry_delays.append(backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.cfg.led_backoff_max_s)

    async def _reconcile(self) -> None:
        at = now()
        if not self._opened:
            await self.board.open()
            self._opened = True
            self.last_ack_at = time.time()
        if self.last_ack_at is None or time.time() - self.last_ack_at > self.cfg.led_ping_s:
            status = await self.board.ping()
            self.last_ack_at = time.time()
            if status.temperature_c is not None:
                self.temperature_c = status.temperature_c
        want = choose(self.content, at)
        level = brightness_at(self.content, at)
        changed = False
        if level is not None and level != self.brightness:
            try:
                await self.board.set_brightness(level)
                self.brightness = level
                changed = True
            except NotImplementedError:
                self.brightness = level  # the board cannot dim; do not retry every tick
        stale = time.monotonic() - self._last_sent_at > self.cfg.led_refresh_s
        if want != self.on_board or stale or (want is None and self.board_shows is None):
            if want is None:
                await self.board.clear()
                self.board_shows = ""
            else:
                self.board_shows = await self.board.show(want)
            self.sends += 1
            self._last_sent_at = time.monotonic()
            self.last_ack_at = time.time()
            changed = changed or want != self.on_board
            self.on_board = want
        if changed:
            await self._report()

    def _showing_emergency(self) -> bool:
        return bool(self.on_board and self.on_board.priority == "emergency")

    def _board_overwritten(self) -> None:
        """A diagnostic drew on the board: send the real content again now."""
        self.on_board = None
        self._wake.set()


def led_station(config: AgentConfig, board: LedController, *, tick_s: float = 0.5) -> StationHost[LedRole]:
    """An LED board station: the host with the LED role."""
    return StationHost(config, lambda kit: LedRole(kit, board, tick_s=tick_s))
