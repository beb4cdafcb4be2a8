"""A speaker station's diagnostics: test tone, relay click, set volume (docs/operations.md).

Bulletins always win: the test tone holds the horn at `filler` priority, so any bulletin
that starts preempts it, as does a new desired state (the result then says `interrupted`,
with `interrupted_by`), and a tone or a relay click asked for while a bulletin plays is
refused as `busy`. The tone goes on air the way a bulletin does (speaker/on_air.py).
"""

from __future__ import annotations

import array
import asyncio
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from device_agents.hardware.amplifier import Amplifier, HardwareError, NoAmplifier, PowerReading
from device_agents.hardware.audio import AudioOutput, PreparedAudio
from device_agents.host.diagnostics import DiagnosticError, Handler
from device_agents.speaker.on_air import HornBusy, OnAir
from device_agents.speaker.volume import Volume
from protocol import topics
from protocol.messages import MediaRef, Priority, ScheduleItem, Telemetry
from protocol.ops import DiagnosticAction, RelayClickParams, SetVolumeParams, TestToneParams

log = logging.getLogger(__name__)

TONE_RATE = 16000


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


class SpeakerDiagnostics:
    def __init__(
        self,
        *,
        uid: str,
        audio: AudioOutput,
        amp: Amplifier,
        on_air: OnAir,
        volume: Volume,
        publish: Callable[..., Awaitable[bool]],
    ) -> None:
        self.uid = uid
        self.audio = audio
        self.amp = amp
        self.on_air = on_air
        self.volume = volume
        self.publish = publish  # the link's publish_now: set_volume reports at once
        self._hardware = asyncio.Lock()  # one hardware test at a time

    def actions(self) -> Mapping[DiagnosticAction, Handler]:
        return {
            DiagnosticAction.TEST_TONE: self._test_tone,
            DiagnosticAction.RELAY_CLICK: self._relay_click,
            DiagnosticAction.SET_VOLUME: self._set_volume,
        }

    async def _read_amp(self) -> PowerReading | None:
        if isinstance(self.amp, NoAmplifier):
            return None
        try:
            return await self.amp.read()
        except HardwareError as exc:
            log.warning("%s: amplifier read during a diagnostic failed: %s", self.uid, exc)
            return None

    async def _test_tone(self, ref: str, p: TestToneParams) -> dict[str, Any]:
        audio, horn = self.audio, self.on_air.horn
        if horn.current is not None or audio.playing:
            holder = horn.current.item_id if horn.current is not None else None
            raise DiagnosticError("busy", "a bulletin is playing; a test tone never interrupts one",
                                  {"playing": holder})
        volume = p.volume if p.volume is not None else self.volume.get()
        pcm = await asyncio.to_thread(tone_pcm, p.frequency_hz, p.seconds)
        prepared = PreparedAudio(pcm=pcm, rate=TONE_RATE, files=())
        item = ScheduleItem(
            item_id=f"diag-{ref[:16]}", title="test tone", start_at=datetime.now(UTC),
            priority=Priority.FILLER, media=[MediaRef(sha256="0" * 64, size=len(pcm), duration_s=p.seconds)],
        )  # fmt: skip
        async with self._hardware:
            try:
                # Free a moment ago; if a bulletin got there first, give way.
                async with self.on_air.borrowed(item, wait_s=0.5):
                    idle = await self._read_amp()
                    play = asyncio.create_task(audio.play(prepared, start_at=time.time(), volume=volume))
                    during = await self._measure_while_playing(audio, play, p.seconds)
                    result = await play
                    why = self.on_air.stopped(item.item_id)
            except HornBusy:
                raise DiagnosticError("busy", "a bulletin took the loudspeaker first") from None
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
        amp, relay = self.amp, self.on_air.relay
        if isinstance(amp, NoAmplifier):
            raise DiagnosticError("not_supported", "this station has no relay board")
        async with self._hardware:
            if relay.busy:
                raise DiagnosticError("busy", "the amplifier is in use by a bulletin")
            before = (await amp.read()).relay_on
            await amp.set_power(not before)
            toggled = (await amp.read()).relay_on
            await asyncio.sleep(p.hold_s)
            restored = not relay.busy  # a bulletin that started meanwhile keeps it on
            if restored:
                await amp.set_power(before)
                if before:
                    # On with no bulletin: the idle switch-off may have fired during the
                    # click; re-arm it so the amplifier is not left on until the next bulletin.
                    await relay.acquire()
                    relay.release()
            after = (await amp.read()).relay_on
        detail = {"relay_before": before, "relay_toggled": toggled, "relay_after": after,
                  "hold_s": p.hold_s, "restored": restored}
        if toggled == before:
            raise DiagnosticError("relay_stuck", "the relay did not change state", detail)
        if restored and after != before:
            raise DiagnosticError("relay_stuck", "the relay did not go back", detail)
        return detail

    async def _set_volume(self, ref: str, p: SetVolumeParams) -> dict[str, Any]:
        before = self.volume.get()
        self.volume.set(p.volume)
        tele: dict[str, Any] = {"ts": datetime.now(UTC), "volume": p.volume}
        reading = await self._read_amp()
        if reading is not None:
            tele |= {"relay_on": reading.relay_on, "mains_v": _num(reading.mains_v),
                     "amp_current_a": _num(reading.amp_current_a),
                     "cabinet_temp_c": _num(reading.cabinet_temp_c)}
        payload = Telemetry.model_validate(tele).model_dump_json().encode()
        await self.publish(topics.telemetry(self.uid), payload, qos=1)
        return {"volume_before": before, "volume": p.volume}
