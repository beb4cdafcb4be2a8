"""The speaker role: signed schedule items in, each played at its instant, proof reported back.

It talks to hardware only through AudioOutput and Amplifier, so it never knows whether it
drives ALSA and an RS-485 relay board or the firmware simulator. Everything stations share
(link, gate, store, events, diagnostics, updater, birth, telemetry) is the host's
(device_agents/host/host.py); going on air is speaker/on_air.py's, for file items here and
stream items (speaker/stream.py) alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from device_agents.common.clock import REAL_CLOCK, Clock
from device_agents.common.clock_offset import ClockOffsetProbe, OffsetSample
from device_agents.common.config import AgentConfig
from device_agents.common.media_cache import MediaCache, MediaError
from device_agents.common.store import AgentStore
from device_agents.hardware.amplifier import Amplifier, HardwareError
from device_agents.hardware.audio import AudioOutput, PlaybackResult
from device_agents.host.host import StationHost
from device_agents.host.role import DiagnosticHandler, RoleKit, unsupported
from device_agents.speaker.diagnostics import SpeakerDiagnostics
from device_agents.speaker.horn import Horn
from device_agents.speaker.kit import SpeakerKit
from device_agents.speaker.on_air import OnAir
from device_agents.speaker.relay import AmplifierRelay
from device_agents.speaker.stream import run_stream_item
from device_agents.speaker.volume import Volume
from protocol.envelope import Envelope, Rejected
from protocol.messages import (
    CancelCommand,
    CommandKind,
    DesiredState,
    EventKind,
    PlayCommand,
    RejectReason,
    ScheduleItem,
)
from protocol.ops import DiagnosticAction

log = logging.getLogger(__name__)

KEEP_DONE_S = 2 * 86400


class SpeakerRole:
    def __init__(
        self,
        kit: RoleKit,
        audio: AudioOutput,
        amplifier: Amplifier,
        clock: Clock | None = None,
        *,
        media_http: httpx.AsyncClient | None = None,
    ) -> None:
        """`media_http` lets a fleet of simulated stations share one HTTP client."""
        config = kit.config
        self.cfg = config
        self.uid = config.uid
        # Every schedule decision reads this clock (tests inject an accelerated one).
        self.clock = clock or REAL_CLOCK
        self.audio = audio
        self.amp = amplifier
        self.store: AgentStore = kit.store
        self.events = kit.events
        self._report_state = kit.report_state
        self.media = MediaCache(config.data_dir / "media", config.controller_url, http=media_http)
        # Offset to the controller's clock, reported in the retained state (docs/emergency.md). It
        # asks over the media cache's client (one TLS context per station, not two; the cache closes it).
        self.clock_probe = ClockOffsetProbe(config.controller_url, http=media_http or self.media.client(),
                                            clock=self.clock,
                                            period_s=config.clock_offset_interval_s,
                                            first_within_s=min(20.0, config.clock_offset_interval_s))
        self.volume = Volume(self.store, config.default_volume)
        self.relay = AmplifierRelay(amplifier, hold_s=config.relay_hold_s, on_fault=self._relay_fault)
        self.on_air = OnAir(relay=self.relay, horn=Horn(), audio=audio, store=self.store,
                            events=self.events, cancel=self._cancel)
        self.kit = SpeakerKit(uid=self.uid, config=config, clock=self.clock, audio=audio, media=self.media,
                              on_air=self.on_air, events=self.events, volume=self.volume)
        self.diagnostics = SpeakerDiagnostics(uid=self.uid, audio=audio, amp=amplifier, on_air=self.on_air,
                                              volume=self.volume, publish=kit.publish)
        self._runners: dict[str, asyncio.Task[None]] = {}

    # -- the role protocol ---------------------------------------------------------------------------
    def resume(self) -> None:
        for item in self.store.items_in_state("playing"):
            # We died mid-play: it did not finish, so it is not 'played'.
            self.on_air.finish(item, EventKind.INTERRUPTED, "interrupted", reason="agent_restart",
                               expect="playing")
        for item in self.store.pending_items():
            self._arm(item)

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {"clock": self.clock_probe.run(self._report_offset)}

    def reported(self) -> dict[str, Any]:
        return {"clock_offset_ms": self.clock_probe.offset_ms}

    def diagnostic_actions(self) -> Mapping[DiagnosticAction, DiagnosticHandler]:
        return self.diagnostics.actions()

    def apply_desired(self, state: DesiredState) -> list[str]:
        self.volume.set(state.volume)
        keep = {i.item_id for i in state.schedule}
        for item_id in self.store.drop_pending(keep):
            runner = self._runners.pop(item_id, None)
            if runner is not None:
                runner.cancel()
        # What came as a command plays on: the desired state may have been built before the
        # command, and only a CANCEL stops it (as drop_pending keeps it while pending).
        self.on_air.cancel_all_except(keep | self.store.from_commands())
        self._accept(state.schedule)
        return sorted(keep)

    async def command(self, env: Envelope) -> None:
        if env.kind is CommandKind.PLAY:
            item = self._take_inline(env, PlayCommand.model_validate(env.body).item)
            self._accept([item], source="command")  # a later desired state must not drop it
            self.events.emit(EventKind.ACK, ref=env.id, item_id=item.item_id,
                             broadcast_id=item.broadcast_id, detail={"items": [item.item_id]})
        elif env.kind is CommandKind.CANCEL:
            cmd = CancelCommand.model_validate(env.body)
            await self._cancel(cmd.item_id, "cancelled")
            self.events.emit(EventKind.ACK, ref=env.id, item_id=cmd.item_id)
        else:
            raise unsupported(env)

    def _take_inline(self, env: Envelope, item: ScheduleItem) -> ScheduleItem:
        """Audio inside the PLAY (docs/emergency.md, "Audio inside the PLAY") goes into the media
        cache, verified against its reference, before the item is stored or acknowledged; from
        then on the item is played exactly as if its audio had been downloaded. Bytes that do
        not match: the whole command is refused (`media_mismatch`), nothing is stored or played."""
        for ref in item.media:
            data = ref.inline_bytes()
            if data is None:
                continue
            try:
                self.media.put_verified(ref, data)
            except MediaError as exc:
                raise Rejected(RejectReason.MEDIA_MISMATCH,
                               f"item {item.item_id}: audio inside the PLAY refused ({exc})", env.id) from exc
            except OSError as exc:  # verified, but the disk would not take it: fetched over HTTP instead
                log.warning("%s: could not store the audio inside PLAY %s (%s)", self.uid, env.id, exc)
        return item.without_inline()

    async def telemetry(self) -> dict[str, Any]:
        self.store.prune_items(self.clock.time() - KEEP_DONE_S)  # housekeeping, once a period
        tele: dict[str, Any] = {"volume": self.volume.get(), "clock_offset_ms": self.clock_probe.offset_ms}
        playing = self.audio.playing
        try:
            r = await self.amp.read()
            tele |= {"relay_on": r.relay_on, "mains_v": r.mains_v,
                     "amp_current_a": r.amp_current_a, "cabinet_temp_c": r.cabinet_temp_c}
        except HardwareError as exc:
            tele["extra"] = {"amplifier_error": str(exc)}
        tele["playing"] = playing and self.audio.playing  # sounding all through the meter read
        return tele

    async def stop(self) -> None:
        self.relay.close()
        runners = list(self._runners.values())
        for task in runners:
            task.cancel()
        for task in runners:
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

    # -- items -----------------------------------------------------------------------------------------
    async def _report_offset(self, _sample: OffsetSample) -> None:
        """A new clock offset: re-publish the retained state that carries it."""
        await self._report_state()

    def _accept(self, items: list[ScheduleItem], source: str = "desired") -> None:
        for item in self.store.upsert_items(items, source=source):
            self._arm(item)
        for item in items:  # unchanged and pending, but nobody waits for it (its runner failed)
            if item.item_id not in self._runners and self.store.item_state(item.item_id) == "pending":
                self._arm(item)

    async def _cancel(self, item_id: str, why: str) -> None:
        runner = self._runners.pop(item_id, None)
        if not await self.on_air.stop(item_id, why):
            if runner is not None:
                runner.cancel()
            self.store.forget_pending(item_id)

    def _arm(self, item: ScheduleItem) -> None:
        if self.on_air.is_on(item.item_id):
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

    def _relay_fault(self, on: bool, error: str) -> None:
        self.events.emit(EventKind.FAULT, reason="amplifier_relay", detail={"on": on, "error": error})

    # -- playing one file item -------------------------------------------------------------------------
    async def _run_item(self, item: ScheduleItem) -> None:
        if item.stream is not None:  # live voice or a relay: device_agents/speaker/stream.py
            await run_stream_item(self.kit, item)
            return
        start = item.start_at.timestamp()
        tolerance = self.cfg.late_start_tolerance_s
        if self.clock.time() - start > tolerance:
            self.on_air.finish(item, EventKind.MISSED, "missed", reason="start passed before it could play")
            return
        try:
            paths = [await self.media.ensure(ref) for ref in item.media]
        except MediaError as exc:
            self.on_air.finish(item, EventKind.PLAY_FAILED, "failed", reason=f"media: {exc}")
            return
        readiness = _Readiness(self.clock)
        await readiness.wait_until(start - self.cfg.prepare_ahead_s)
        prepared = await self.audio.prepare(paths)
        await readiness.wait_until(start - self.cfg.relay_lead_s)

        def missed() -> str | None:
            return "horn busy past the start" if self.clock.time() - start > tolerance else None

        async with self.on_air.scheduled(item, missed=missed, relay_on=readiness.relay_on) as on:
            if on:
                await self._play(item, prepared, start, readiness.ready_at())

    async def _play(self, item: ScheduleItem, prepared: Any, start: float,
                    ready_at: datetime | None = None) -> None:
        volume = item.volume if item.volume is not None else self.volume.get()
        play = asyncio.create_task(self._start_output(item, prepared, start, volume))
        # Report a moment after the start, so the report's disk write never delays the first sample.
        await self.clock.sleep_until(start + 0.05)
        if not self.on_air.stopped(item.item_id):  # not stopped before it began
            self.events.emit(EventKind.PLAY_STARTED, item_id=item.item_id, broadcast_id=item.broadcast_id,
                             ready_at=ready_at, detail={"started_at": start, "volume": volume})
        try:
            result = await play
        except Exception as exc:
            log.exception("%s: playback of %s failed", self.uid, item.item_id)
            self.on_air.finish(item, EventKind.PLAY_FAILED, "failed", reason=f"audio: {exc}")
            return
        detail = {
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "start_error_ms": round((result.started_at - start) * 1000, 2),
            "volume": volume,
        }
        if result.completed:
            self.on_air.finish(item, EventKind.PLAY_FINISHED, "played", detail=detail)
        else:
            why = self.on_air.stopped(item.item_id) or "stopped"
            self.on_air.finish(item, EventKind.INTERRUPTED, "interrupted", reason=why, detail=detail)

    async def _start_output(
        self, item: ScheduleItem, prepared: Any, start: float, volume: int
    ) -> PlaybackResult:
        """Hand the audio to the output unless a stop came first.

        A preemption can land after this task is created but before the output has
        registered the playback, when its stop() would find nothing to stop; the check
        and the output's registration run without a pause in between.
        """
        if self.on_air.stopped(item.item_id):
            return PlaybackResult.not_started(self.clock.time())
        return await self.audio.play(prepared, start_at=max(start, self.clock.time()), volume=volume)


class _Readiness:
    """When a file item was READY to sound (`Event.ready_at`, docs/protocol.md): its audio in the
    cache and decoded, the amplifier relay on. The agent waits on purpose before the last two
    (decode `prepare_ahead_s`, switch the relay `relay_lead_s` before the start); those waits are
    taken off, so the instant says when the station *could* have started, whatever the lead was.
    The controller learns the emergency lead from it, and a lead learnt from a figure that grew
    with the lead itself would never come down."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waited = 0.0  # seconds spent waiting on purpose
        self._relay_on: float | None = None

    async def wait_until(self, instant: float) -> None:
        before = self._clock.time()
        if instant <= before:
            return
        await self._clock.sleep_until(instant)
        self._waited += max(0.0, min(self._clock.time(), instant) - before)

    def relay_on(self) -> None:
        """The relay is on (or was already): called once the item holds it."""
        if self._relay_on is None:
            self._relay_on = self._clock.time()

    def ready_at(self) -> datetime | None:
        if self._relay_on is None:
            return None
        return datetime.fromtimestamp(self._relay_on - self._waited, UTC)


def speaker_station(
    config: AgentConfig,
    audio: AudioOutput,
    amplifier: Amplifier,
    clock: Clock | None = None,
    *,
    store: AgentStore | None = None,
    media_http: httpx.AsyncClient | None = None,
) -> StationHost[SpeakerRole]:
    """A speaker station: the host with the speaker role. `store` and `media_http` let a fleet of
    simulated stations share costs; a Pi uses the defaults (a durable store in its data dir, its
    own HTTP client)."""
    return StationHost(
        config, lambda kit: SpeakerRole(kit, audio, amplifier, clock, media_http=media_http), store=store
    )
