"""The speaker-station agent: reconcile signed desired state, play items at their instant.

It talks to hardware only through AudioOutput and Amplifier, so it never knows whether
it drives ALSA and an RS-485 relay board or the firmware simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from device_agents.common import health, logbuffer
from device_agents.common.clock import REAL_CLOCK, Clock
from device_agents.common.clock_offset import ClockOffsetProbe, OffsetSample
from device_agents.common.config import AgentConfig
from device_agents.common.diagnostics import DiagnosticHooks, Diagnostics
from device_agents.common.gate import CommandGate
from device_agents.common.link import AgentLink
from device_agents.common.media_cache import MediaCache, MediaError
from device_agents.common.store import AgentStore
from device_agents.common.tls import agent_context
from device_agents.common.updater import Updater, running_version
from device_agents.hardware.amplifier import Amplifier, HardwareError
from device_agents.hardware.audio import AudioOutput, PlaybackResult
from device_agents.speaker.horn import Horn
from device_agents.speaker.stream import run_stream_item
from protocol import topics
from protocol.envelope import Envelope, Rejected
from protocol.messages import (
    CancelCommand,
    CommandKind,
    DesiredState,
    Event,
    EventKind,
    PlayCommand,
    RejectReason,
    ReportedState,
    ScheduleItem,
    Telemetry,
)

log = logging.getLogger(__name__)

AGENT_VERSION = running_version()  # the installed release, reported at birth (docs/operations.md)
KEEP_DONE_S = 2 * 86400


class SpeakerAgent:
    def __init__(
        self,
        config: AgentConfig,
        audio: AudioOutput,
        amplifier: Amplifier,
        clock: Clock | None = None,
        *,
        store: AgentStore | None = None,
        media_http: httpx.AsyncClient | None = None,
    ) -> None:
        """`store` and `media_http` let a fleet of simulated stations share costs; a Pi
        uses the defaults (a durable store in its data dir, its own HTTP client)."""
        self.cfg = config
        # Every schedule decision reads this clock (tests inject an accelerated one).
        self.clock = clock or REAL_CLOCK
        self.uid = config.uid
        self.audio = audio
        self.amp = amplifier
        self.store = store or AgentStore(config.data_dir / "agent.sqlite3")
        self.media = MediaCache(config.data_dir / "media", config.controller_url, http=media_http)
        # Offset to the controller's clock, reported in the retained state (docs/emergency.md).
        self.clock_probe = ClockOffsetProbe(config.controller_url, http=media_http, clock=self.clock,
                                            period_s=config.clock_offset_interval_s,
                                            first_within_s=min(20.0, config.clock_offset_interval_s))
        self.gate = CommandGate(
            config.uid, config.groups, config.controller_public_keys, self.store
        )
        self.link = AgentLink(
            host=config.mqtt_host,
            port=config.mqtt_port,
            client_id=config.uid,
            username=config.mqtt_username,
            password=config.mqtt_password,
            keepalive=config.mqtt_keepalive_s,
            subscriptions=self.gate.subscriptions,
            state_topic=topics.state(config.uid),
            birth=self._birth,
            last_will=ReportedState(online=False, kind=config.kind).model_dump_json().encode(),
            store=self.store,
            on_message=self._on_message,
            tls=agent_context(config),  # None: plain MQTT (docs/enrollment.md, TLS)
        )
        self.horn = Horn()
        self.rejections: dict[str, int] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._playing: dict[str, str | None] = {}  # item_id -> why it was stopped
        self._relay_users = 0
        self._relay_off: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = time.monotonic()
        # Remote diagnostics and signed updates (docs/operations.md): closed actions, no shell.
        self.diagnostics = Diagnostics(DiagnosticHooks(
            uid=self.uid, store=self.store, emit=self._emit, publish=self.link.publish_now,
            logs=logbuffer.install(), default_volume=config.default_volume, audio=audio, amp=amplifier,
            horn=self.horn, playing=self._playing, relay_acquire=self._relay_acquire,
            relay_release=self._relay_release, relay_busy=lambda: self._relay_users > 0))  # fmt: skip
        self.diagnostics.h.logs.add_secret(config.mqtt_password)
        self.updater = Updater(config, emit=self._emit, on_applied=self.diagnostics.request_restart)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        for item in self.store.items_in_state("playing"):
            # We died mid-play: it did not finish, so it is not 'played'.
            self._finish(item, EventKind.INTERRUPTED, "interrupted", reason="agent_restart")
        for item in self.store.pending_items():
            self._arm(item)
        self._tasks = [
            asyncio.create_task(self.link.run(), name=f"{self.uid}-link"),
            asyncio.create_task(self._telemetry_loop(), name=f"{self.uid}-tele"),
            asyncio.create_task(self.clock_probe.run(self._report_offset), name=f"{self.uid}-clock"),
        ]
        self._tasks.append(asyncio.create_task(self.updater.watch_boot(self.link.connected),
                                               name=f"{self.uid}-release-confirm"))

    async def stop(self) -> None:
        goodbye = ReportedState(online=False, ts=_now(), kind=self.cfg.kind)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.link.close(goodbye.model_dump_json().encode()), 2)
        await self.diagnostics.close()
        await self.updater.close()
        if self._relay_off is not None:  # the amplifier's idle switch-off: nothing left to switch
            self._relay_off.cancel()
            self._relay_off = None
        for task in [*self._tasks, *self._runners.values()]:
            task.cancel()
        for task in [*self._tasks, *self._runners.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.audio.stop()
        with contextlib.suppress(Exception):
            await self.amp.close()
        with contextlib.suppress(Exception):
            await self.media.close()
        with contextlib.suppress(Exception):
            await self.clock_probe.close()
        self.store.close()

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    def _birth(self) -> bytes:
        state = ReportedState(
            online=True,
            ts=_now(),
            kind=self.cfg.kind,
            agent_version=AGENT_VERSION,
            desired_version=int(self.store.get("desired_version", "0") or 0),
            clock_offset_ms=self.clock_probe.offset_ms,
        )
        return state.model_dump_json().encode()

    async def _report_offset(self, _sample: OffsetSample) -> None:
        """A new clock offset: re-publish the retained state that carries it."""
        await self.link.publish_now(topics.state(self.uid), self._birth(), qos=1, retain=True)

    # -- messages -----------------------------------------------------------------------
    async def _on_message(self, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a retained message was cleared
        try:
            env = self.gate.open(payload)
            if env.kind is CommandKind.DESIRED_STATE:
                self._apply_desired(env)
            elif env.kind is CommandKind.PLAY:
                item = PlayCommand.model_validate(env.body).item
                self._accept([item], source="command")  # a later desired state must not drop it
                self._emit(EventKind.ACK, ref=env.id, item_id=item.item_id,
                           broadcast_id=item.broadcast_id, detail={"items": [item.item_id]})
            elif env.kind is CommandKind.CANCEL:
                cmd = CancelCommand.model_validate(env.body)
                await self._cancel(cmd.item_id, "cancelled")
                self._emit(EventKind.ACK, ref=env.id, item_id=cmd.item_id)
            elif env.kind is CommandKind.PING:
                self._emit(EventKind.ACK, ref=env.id)
            elif env.kind is CommandKind.DIAGNOSTIC:
                self.diagnostics.accept(env)  # result comes as a diagnostic_result event
            elif env.kind is CommandKind.UPDATE:
                self.updater.accept(env)  # outcome: update_applied / _rolled_back / _refused
            else:
                raise Rejected(RejectReason.UNSUPPORTED, f"kind {env.kind}", env.id)
        except Rejected as rej:
            self.rejections[rej.reason.value] = self.rejections.get(rej.reason.value, 0) + 1
            log.warning("%s rejected a message on %s: %s (%s)", self.uid, topic, rej.reason, rej)
            self._emit(EventKind.REJECTED, ref=rej.envelope_id, reason=rej.reason.value,
                       detail={"topic": topic, "message": str(rej)})
        except ValueError as exc:  # a signed body that does not validate
            self.rejections["malformed"] = self.rejections.get("malformed", 0) + 1
            self._emit(EventKind.REJECTED, reason=RejectReason.MALFORMED.value,
                       detail={"topic": topic, "message": str(exc)[:300]})

    def _apply_desired(self, env: Envelope) -> None:
        state = DesiredState.model_validate(env.body)
        applied = int(self.store.get("desired_version", "0") or 0)
        if state.version == applied and env.id == self.store.get("desired_id"):
            return  # the same retained message again after a reconnect: nothing to do
        if state.version <= applied:
            raise Rejected(RejectReason.STALE, f"version {state.version} <= {applied}", env.id)
        self.store.put("desired_version", str(state.version))
        self.store.put("desired_id", env.id)
        self.store.put("volume", str(state.volume))
        keep = {i.item_id for i in state.schedule}
        for item_id in self.store.drop_pending(keep):
            runner = self._runners.pop(item_id, None)
            if runner is not None:
                runner.cancel()
        for item_id in list(self._playing):
            if item_id not in keep:
                self._playing[item_id] = "cancelled"
                asyncio.get_running_loop().create_task(self.audio.stop())
        self._accept(state.schedule)
        self._emit(EventKind.ACK, ref=env.id, detail={"version": state.version, "items": sorted(keep)})

    def _accept(self, items: list[ScheduleItem], source: str = "desired") -> None:
        for item in self.store.upsert_items(items, source=source):
            self._arm(item)

    async def _cancel(self, item_id: str, why: str) -> None:
        runner = self._runners.pop(item_id, None)
        if item_id in self._playing:
            self._playing[item_id] = why
            await self.audio.stop()
        else:
            if runner is not None:
                runner.cancel()
            self.store.forget_pending(item_id)

    def _arm(self, item: ScheduleItem) -> None:
        if item.item_id in self._playing:
            return
        old = self._runners.pop(item.item_id, None)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._run_item(item))
        self._runners[item.item_id] = task
        task.add_done_callback(lambda t, i=item.item_id: self._forget(i, t))

    def _forget(self, item_id: str, task: asyncio.Task[None]) -> None:
        if self._runners.get(item_id) is task:
            del self._runners[item_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("item %s failed: %r", item_id, task.exception())

    # -- playing one item -------------------------------------------------------------------
    async def _run_item(self, item: ScheduleItem) -> None:
        if item.stream is not None:  # live voice or a relay: device_agents/speaker/stream.py
            await run_stream_item(self, item)
            return
        start = item.start_at.timestamp()
        tolerance = self.cfg.late_start_tolerance_s
        if self.clock.time() - start > tolerance:
            self._finish(item, EventKind.MISSED, "missed", reason="start passed before it could play")
            return
        try:
            paths = [await self.media.ensure(ref) for ref in item.media]
        except MediaError as exc:
            self._finish(item, EventKind.PLAY_FAILED, "failed", reason=f"media: {exc}")
            return
        await self.clock.sleep_until(start - self.cfg.prepare_ahead_s)
        prepared = await self.audio.prepare(paths)
        await self.clock.sleep_until(start - self.cfg.relay_lead_s)
        await self._relay_acquire()
        try:
            victim = await self.horn.acquire(item)
            if victim is not None:
                await self._cancel(victim.item_id, f"preempted by {item.item_id}")
            if self.clock.time() - start > tolerance:
                self._finish(item, EventKind.MISSED, "missed", reason="horn busy past the start")
                await self.horn.release(item)
                return
            if not self.store.transition(item.item_id, "playing", expect="pending"):
                await self.horn.release(item)
                return  # already played or cancelled: never twice
            self._playing[item.item_id] = None
            try:
                await self._play(item, prepared, start)
            finally:
                self._playing.pop(item.item_id, None)
                await self.horn.release(item)
        finally:
            self._relay_release()

    async def _play(self, item: ScheduleItem, prepared: Any, start: float) -> None:
        volume = item.volume if item.volume is not None else self._volume()
        play = asyncio.create_task(self._start_output(item, prepared, start, volume))
        # Report a moment after the start, so the report's disk write never delays the first sample.
        await self.clock.sleep_until(start + 0.05)
        if not self._playing.get(item.item_id):  # not stopped before it began
            self._emit(EventKind.PLAY_STARTED, item_id=item.item_id, broadcast_id=item.broadcast_id,
                       detail={"started_at": start, "volume": volume})
        try:
            result = await play
        except Exception as exc:
            log.exception("%s: playback of %s failed", self.uid, item.item_id)
            self._finish(item, EventKind.PLAY_FAILED, "failed", reason=f"audio: {exc}")
            return
        detail = {
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "start_error_ms": round((result.started_at - start) * 1000, 2),
            "volume": volume,
        }
        if result.completed:
            self._finish(item, EventKind.PLAY_FINISHED, "played", detail=detail)
        else:
            why = self._playing.get(item.item_id) or "stopped"
            self._finish(item, EventKind.INTERRUPTED, "interrupted", reason=why, detail=detail)

    async def _start_output(
        self, item: ScheduleItem, prepared: Any, start: float, volume: int
    ) -> PlaybackResult:
        """Hand the audio to the output unless a stop came first.

        A preemption can land after this task is created but before the output has
        registered the playback, when its stop() would find nothing to stop; the check
        and the output's registration run without a pause in between.
        """
        if self._playing.get(item.item_id):
            return PlaybackResult.not_started(self.clock.time())
        return await self.audio.play(prepared, start_at=max(start, self.clock.time()), volume=volume)

    def _finish(
        self,
        item: ScheduleItem,
        kind: EventKind,
        outcome: str,
        *,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        event = self._event(kind, item_id=item.item_id, broadcast_id=item.broadcast_id,
                            reason=reason, detail=detail or {})
        self.store.transition(item.item_id, "done", outcome, event=event)
        self.link.wake_outbox()

    # -- amplifier ---------------------------------------------------------------------------
    async def _relay_acquire(self) -> None:
        self._relay_users += 1
        if self._relay_off is not None:
            self._relay_off.cancel()
            self._relay_off = None
        if self._relay_users == 1:
            await self._set_relay(True)

    def _relay_release(self) -> None:
        self._relay_users -= 1
        if self._relay_users == 0:
            loop = asyncio.get_running_loop()
            self._relay_off = loop.call_later(
                self.cfg.relay_hold_s, lambda: loop.create_task(self._relay_idle_off())
            )

    async def _relay_idle_off(self) -> None:
        if self._relay_users == 0:
            await self._set_relay(False)

    async def _set_relay(self, on: bool) -> None:
        try:
            await self.amp.set_power(on)
        except HardwareError as exc:
            # Play anyway: many cabinets have the amplifier hard-wired on.
            self._emit(EventKind.FAULT, reason="amplifier_relay", detail={"on": on, "error": str(exc)})

    # -- telemetry -------------------------------------------------------------------------------
    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.telemetry_interval_s)
            self.store.prune_items(self.clock.time() - KEEP_DONE_S)
            tele: dict[str, Any] = {"ts": _now(), "uptime_s": time.monotonic() - self._started,
                                    "volume": self._volume(), "clock_offset_ms": self.clock_probe.offset_ms}
            tele |= (await health.collect(self.cfg.data_dir)).as_telemetry()  # docs/health.md
            playing = self.audio.playing
            try:
                r = await self.amp.read()
                tele |= {"relay_on": r.relay_on, "mains_v": r.mains_v,
                         "amp_current_a": r.amp_current_a, "cabinet_temp_c": r.cabinet_temp_c}
            except HardwareError as exc:
                tele["extra"] = {"amplifier_error": str(exc)}
            tele["playing"] = playing and self.audio.playing  # sounding all through the meter read
            payload = Telemetry.model_validate(tele).model_dump_json().encode()
            await self.link.publish_now(topics.telemetry(self.uid), payload)

    # -- helpers -------------------------------------------------------------------------------------
    def _volume(self) -> int:
        return int(self.store.get("volume", str(self.cfg.default_volume)) or self.cfg.default_volume)

    def _event(self, kind: EventKind, **fields: Any) -> tuple[str, bytes]:
        event = Event(id=uuid.uuid4().hex, kind=kind, ts=_now(), **fields)
        return topics.events(self.uid), event.model_dump_json().encode()

    def _emit(self, kind: EventKind, **fields: Any) -> None:
        topic, payload = self._event(kind, **fields)
        self.store.enqueue(topic, payload)
        self.link.wake_outbox()


def _now() -> datetime:
    return datetime.now(UTC)
