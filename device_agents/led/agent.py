"""The LED-board agent: signed desired state in, the right text on the board, proof reported back.

Same skeleton as the speaker agent (AgentLink, CommandGate, AgentStore), but its "play" is a
reconciliation loop: what should the board show now (validity windows, priority, rotation,
night dimming) versus what it last acknowledged. A board that stops answering is backed off,
reported as a fault, and gets the current content again as soon as it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from device_agents.common import health, logbuffer
from device_agents.common.config import AgentConfig
from device_agents.common.diagnostics import DiagnosticHooks, Diagnostics
from device_agents.common.gate import CommandGate
from device_agents.common.link import AgentLink
from device_agents.common.store import AgentStore
from device_agents.common.tls import agent_context
from device_agents.common.updater import Updater, running_version
from device_agents.led.driver import BoardContent, LedController, LedError
from protocol import topics
from protocol.envelope import Rejected
from protocol.messages import (
    CommandKind,
    DesiredState,
    Event,
    EventKind,
    LedContent,
    LedMessage,
    RejectReason,
    ReportedState,
    Telemetry,
)

log = logging.getLogger(__name__)
AGENT_VERSION = running_version()  # the installed release, reported at birth (docs/operations.md)


def choose(content: LedContent, now: datetime) -> BoardContent | None:
    """What the board should show at `now`: active messages of the highest priority, rotating."""
    active = [m for m in content.messages
              if (m.start_at is None or m.start_at <= now) and (m.end_at is None or now < m.end_at)]
    if not active:
        return None
    top = max(m.priority.rank for m in active)
    pick: list[LedMessage] = [m for m in active if m.priority.rank == top]
    if len(pick) > 1:
        cycle = sum(m.duration_s for m in pick)
        t = now.timestamp() % cycle
        for m in pick:
            if t < m.duration_s:
                pick = [m]
                break
            t -= m.duration_s
    m = pick[0]
    return BoardContent(m.text, m.mode, m.color, m.speed, m.priority.value, (m.item_id,))


def brightness_at(content: LedContent, now: datetime) -> int | None:
    if not content.brightness:
        return None
    local = now.astimezone(ZoneInfo(content.timezone)).strftime("%H:%M")
    steps = sorted(content.brightness, key=lambda s: s.at)
    current = steps[-1].percent  # before the first step of the day, yesterday's last one holds
    for s in steps:
        if s.at <= local:
            current = s.percent
    return current


class LedAgent:
    def __init__(self, config: AgentConfig, board: LedController, *, tick_s: float = 0.5) -> None:
        self.cfg = config
        self.uid = config.uid
        self.board = board
        self.tick_s = tick_s
        self.store = AgentStore(config.data_dir / "agent.sqlite3")
        self.gate = CommandGate(config.uid, config.groups, config.controller_public_keys, self.store)
        self.link = AgentLink(
            host=config.mqtt_host, port=config.mqtt_port, client_id=config.uid,
            username=config.mqtt_username, password=config.mqtt_password,
            keepalive=config.mqtt_keepalive_s, subscriptions=self.gate.subscriptions,
            state_topic=topics.state(config.uid), birth=self._birth,
            last_will=ReportedState(online=False, kind=config.kind).model_dump_json().encode(),
            store=self.store, on_message=self._on_message, tls=agent_context(config),
        )  # fmt: skip
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
        self._tasks: list[asyncio.Task[None]] = []
        self._started = time.monotonic()
        self.changed = asyncio.Event()  # set whenever the board's state changed (tests wait on it)
        # Remote diagnostics and signed updates (docs/operations.md): closed actions, no shell.
        self.diagnostics = Diagnostics(DiagnosticHooks(
            uid=self.uid, store=self.store, emit=self._emit, publish=self.link.publish_now,
            logs=logbuffer.install(), board=board, board_overwritten=self._board_overwritten,
            board_busy=lambda: bool(self.on_board and self.on_board.priority == "emergency")))  # fmt: skip
        self.diagnostics.h.logs.add_secret(config.mqtt_password)
        self.updater = Updater(config, emit=self._emit, on_applied=self.diagnostics.request_restart)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.link.run(), name=f"{self.uid}-link"),
            asyncio.create_task(self._display_loop(), name=f"{self.uid}-display"),
            asyncio.create_task(self._telemetry_loop(), name=f"{self.uid}-tele"),
        ]
        self._tasks.append(asyncio.create_task(self.updater.watch_boot(self.link.connected),
                                               name=f"{self.uid}-release-confirm"))

    async def stop(self) -> None:
        goodbye = ReportedState(online=False, ts=_now(), kind=self.cfg.kind)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.link.close(goodbye.model_dump_json().encode()), 2)
        await self.diagnostics.close()
        await self.updater.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.board.close()
        self.store.close()

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

    def _birth(self) -> bytes:
        return ReportedState(
            online=True, ts=_now(), kind=self.cfg.kind, agent_version=AGENT_VERSION,
            desired_version=int(self.store.get("desired_version", "0") or 0), led=self._led_report(),
        ).model_dump_json().encode()

    async def _report(self) -> None:
        await self.link.publish_now(topics.state(self.uid), self._birth(), qos=1, retain=True)
        self.changed.set()

    # -- messages --------------------------------------------------------------------------------------
    async def _on_message(self, topic: str, payload: bytes) -> None:
        if not payload:
            return
        try:
            env = self.gate.open(payload)
            if env.kind is CommandKind.DESIRED_STATE:
                state = DesiredState.model_validate(env.body)
                applied = int(self.store.get("desired_version", "0") or 0)
                if state.version == applied and env.id == self.store.get("desired_id"):
                    return
                if state.version <= applied:
                    raise Rejected(RejectReason.STALE, f"version {state.version} <= {applied}", env.id)
                self.content = state.led or LedContent()
                self.store.put("led_content", self.content.model_dump_json())
                self.store.put("desired_version", str(state.version))
                self.store.put("desired_id", env.id)
                self._emit(EventKind.ACK, ref=env.id, detail={
                    "version": state.version, "items": sorted(m.item_id for m in self.content.messages)})
                self._wake.set()
            elif env.kind is CommandKind.PING:
                self._emit(EventKind.ACK, ref=env.id)
            elif env.kind is CommandKind.DIAGNOSTIC:
                self.diagnostics.accept(env)
            elif env.kind is CommandKind.UPDATE:
                self.updater.accept(env)
            else:
                raise Rejected(RejectReason.UNSUPPORTED, f"kind {env.kind} on an LED board", env.id)
        except Rejected as rej:
            self._emit(EventKind.REJECTED, ref=rej.envelope_id, reason=rej.reason.value,
                       detail={"topic": topic, "message": str(rej)})
        except ValueError as exc:
            self._emit(EventKind.REJECTED, reason=RejectReason.MALFORMED.value,
                       detail={"topic": topic, "message": str(exc)[:300]})

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
        now = _now()
        if not self._opened:
            await self.board.open()
            self._opened = True
            self.last_ack_at = time.time()
        if self.last_ack_at is None or time.time() - self.last_ack_at > self.cfg.led_ping_s:
            status = await self.board.ping()
            self.last_ack_at = time.time()
            if status.temperature_c is not None:
                self.temperature_c = status.temperature_c
        want = choose(self.content, now)
        level = brightness_at(self.content, now)
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

    # -- telemetry ---------------------------------------------------------------------------------------
    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.telemetry_interval_s)
            tele = Telemetry(ts=_now(), uptime_s=time.monotonic() - self._started,
                             cabinet_temp_c=self.temperature_c, extra={"led": self._led_report()},
                             led_reachable=self.reachable,
                             **(await health.collect(self.cfg.data_dir)).as_telemetry())  # docs/health.md
            await self.link.publish_now(topics.telemetry(self.uid), tele.model_dump_json().encode())

    def _board_overwritten(self) -> None:
        """A diagnostic drew on the board: send the real content again now."""
        self.on_board = None
        self._wake.set()

    def _emit(self, kind: EventKind, **fields: Any) -> None:
        event = Event(id=uuid.uuid4().hex, kind=kind, ts=_now(), **fields)
        self.store.enqueue(topics.events(self.uid), event.model_dump_json().encode())
        self.link.wake_outbox()
        self.changed.set()


def _now() -> datetime:
    return datetime.now(UTC)
