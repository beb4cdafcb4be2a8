"""The audio-output seam: prepare (decode) ahead of time, then play at an instant.

All loudspeaker stations of a commune start a broadcast at the same wall-clock
instant. Decoding is slow and variable, so it is done in ``prepare()`` before the
start instant; ``play()`` then only waits and pushes samples.

``AlsaAudioOutput`` is the Raspberry Pi implementation (aplay on an ALSA device);
``firmware_sim.audio_sink.SimAudioSink`` records what would have been played.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import shutil
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from device_agents.common.clock import sleep_until_or_event
from device_agents.hardware.decode import SAMPLE_WIDTH, decode_pcm

log = logging.getLogger(__name__)

DEFAULT_RATE = 16000
# play_stream() chunks: S16LE mono at this rate (voice band; the live path sends it as is).
STREAM_RATE = 16000


class AudioOutputError(Exception):
    """The audio device or its player could not be used."""


@dataclass(frozen=True)
class PreparedAudio:
    """Decoded audio (S16LE mono), ready to be played without further work."""

    pcm: bytes
    rate: int
    files: tuple[Path, ...]

    @property
    def duration_s(self) -> float:
        """Playing time of the decoded samples."""
        return len(self.pcm) / (SAMPLE_WIDTH * self.rate)


@dataclass(frozen=True)
class PlaybackResult:
    """What actually happened, for the station's report to the controller."""

    started_at: float  # unix time the first sample went out
    finished_at: float
    completed: bool  # False when stop() cut it short (preempted)

    @classmethod
    def not_started(cls, now: float) -> PlaybackResult:
        """A stop came before the start: nothing was played (`now` from the caller's clock)."""
        return cls(started_at=now, finished_at=now, completed=False)


@runtime_checkable
class AudioOutput(Protocol):
    """Where a station's sound goes: a real sound card or the simulator."""

    async def prepare(self, files: Sequence[Path]) -> PreparedAudio:
        """Decode ``files`` (in order) so that play() can start precisely."""
        ...

    async def play(self, prepared: PreparedAudio, *, start_at: float, volume: int) -> PlaybackResult:
        """Wait until ``start_at`` (unix time), play to the end or until stop()."""
        ...

    async def play_stream(
        self, chunks: AsyncIterator[bytes], *, start_at: float, volume: int
    ) -> PlaybackResult:
        """From ``start_at``, play S16LE mono STREAM_RATE chunks as they come, until the
        iterator ends (completed) or stop() (not completed). docs/live.md."""
        ...

    async def stop(self) -> None:
        """Cut the current (or pending) playback short within ~50 ms.

        Returns once that play() has ended, so a preempting play() can follow at once.
        """
        ...

    @property
    def playing(self) -> bool:
        """True while samples are going out."""
        ...


def volume_gain(volume: int) -> float:
    """Map a 0..100 volume to a linear gain; squared so the scale feels even to the ear."""
    v = min(max(volume, 0), 100)
    return (v / 100.0) ** 2


def scale_pcm(pcm: bytes, volume: int) -> bytes:
    """Apply software volume to S16LE PCM, clamping to the int16 range.

    Software gain keeps the agent independent of which mixer control a given
    sound card exposes.
    """
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError("PCM length must be a whole number of 16-bit samples")
    gain = volume_gain(volume)
    if gain == 1.0:
        return pcm
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    if gain == 0.0:
        scaled = array.array("h", bytes(len(pcm)))
    else:
        scaled = array.array("h", (min(32767, max(-32768, round(s * gain))) for s in samples))
    if sys.byteorder == "big":
        scaled.byteswap()
    return scaled.tobytes()


async def next_chunk(chunks: AsyncIterator[bytes], stop: asyncio.Event) -> bytes | None:
    """The next chunk of a stream, or None when it ended or ``stop`` was set first."""
    if stop.is_set():
        return None

    async def pull() -> bytes:
        return await chunks.__anext__()

    getter = asyncio.create_task(pull())
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not getter.done():
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await getter
    if getter not in done or getter.cancelled():
        return None
    try:
        return getter.result()
    except StopAsyncIteration:
        return None


class AlsaAudioOutput:
    """Plays through ``aplay`` on an ALSA device (the Pi's sound card or USB DAC).

    aplay is started a little before the start instant (process start and ALSA
    open take tens of ms), then samples are written at the instant itself.
    """

    SPAWN_LEAD_S = 0.25
    CHUNK_BYTES = 3200  # 100 ms at 16 kHz: small writes let stop() act promptly

    def __init__(self, device: str = "default") -> None:
        aplay = shutil.which("aplay")
        if aplay is None:
            raise AudioOutputError("aplay not found on PATH: install alsa-utils to use AlsaAudioOutput")
        self._aplay = aplay
        self.device = device
        self._proc: asyncio.subprocess.Process | None = None
        self._stop_event: asyncio.Event | None = None
        self._ended: asyncio.Event | None = None
        self._playing = False

    @property
    def playing(self) -> bool:
        """True while samples are being written to aplay."""
        return self._playing

    async def prepare(self, files: Sequence[Path]) -> PreparedAudio:
        """Decode to the rate aplay is told to play."""
        paths = tuple(Path(f) for f in files)
        pcm = await decode_pcm(paths, DEFAULT_RATE)
        return PreparedAudio(pcm=pcm, rate=DEFAULT_RATE, files=paths)

    async def play(self, prepared: PreparedAudio, *, start_at: float, volume: int) -> PlaybackResult:
        """Spawn aplay just before ``start_at``, feed it from the instant, wait to drain."""
        async with self._session() as stop_event:
            return await self._play(prepared, start_at, volume, stop_event)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[asyncio.Event]:
        """One playback (file or stream): refuse a second, and whatever happens, end with
        aplay reaped and `stop()` waiters released. Yields the event `stop()` sets."""
        if self._stop_event is not None:
            raise AudioOutputError("already playing; stop() the current playback first")
        stop_event, ended = asyncio.Event(), asyncio.Event()
        self._stop_event, self._ended = stop_event, ended
        try:
            yield stop_event
        finally:
            self._playing = False
            try:
                await self._reap()
            finally:
                self._stop_event = self._ended = None
                ended.set()

    async def _play(
        self, prepared: PreparedAudio, start_at: float, volume: int, stop_event: asyncio.Event
    ) -> PlaybackResult:
        pcm = await asyncio.to_thread(scale_pcm, prepared.pcm, volume)
        if await sleep_until_or_event(start_at - self.SPAWN_LEAD_S, stop_event):
            return PlaybackResult.not_started(time.time())
        self._proc = proc = await asyncio.create_subprocess_exec(
            self._aplay,
            "-q",
            "-t",
            "raw",
            "-f",
            "S16_LE",
            "-r",
            str(prepared.rate),
            "-c",
            "1",
            "-D",
            self.device,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        # Drain stderr all along: underrun chatter must never fill the pipe and stall aplay.
        stderr_task = asyncio.create_task(proc.stderr.read())
        try:
            return await self._feed(proc, pcm, start_at, stop_event, stderr_task)
        finally:
            if not stderr_task.done():
                stderr_task.cancel()

    async def _feed(
        self,
        proc: asyncio.subprocess.Process,
        pcm: bytes,
        start_at: float,
        stop_event: asyncio.Event,
        stderr_task: asyncio.Task[bytes],
    ) -> PlaybackResult:
        if await sleep_until_or_event(start_at, stop_event):
            return PlaybackResult.not_started(time.time())
        started_at = time.time()
        self._playing = True
        assert proc.stdin is not None
        try:
            for offset in range(0, len(pcm), self.CHUNK_BYTES):
                if stop_event.is_set():
                    break
                proc.stdin.write(pcm[offset : offset + self.CHUNK_BYTES])
                await proc.stdin.drain()
            proc.stdin.close()
            await proc.wait()
        except (BrokenPipeError, ConnectionResetError):
            # aplay was killed by stop() or died; told apart below.
            await proc.wait()
        finished_at = time.time()
        if stop_event.is_set():
            return PlaybackResult(started_at, finished_at, completed=False)
        if proc.returncode != 0:
            err = await stderr_task
            raise AudioOutputError(
                f"aplay on {self.device!r} failed ({proc.returncode}): "
                f"{err.decode('utf-8', 'replace').strip()}"
            )
        return PlaybackResult(started_at, finished_at, completed=True)

    STREAM_BUFFER_US = 200_000  # aplay's ring buffer for streams: small, it adds to the latency

    async def play_stream(
        self, chunks: AsyncIterator[bytes], *, start_at: float, volume: int
    ) -> PlaybackResult:
        """Pipe the chunks into aplay as they arrive; ALSA plays silence on an underrun."""
        async with self._session() as stop_event:
            if await sleep_until_or_event(start_at - self.SPAWN_LEAD_S, stop_event):
                return PlaybackResult.not_started(time.time())
            self._proc = proc = await asyncio.create_subprocess_exec(
                self._aplay, "-q", "-t", "raw", "-f", "S16_LE", "-r", str(STREAM_RATE), "-c", "1",
                "-B", str(self.STREAM_BUFFER_US), "-D", self.device,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            if await sleep_until_or_event(start_at, stop_event):
                return PlaybackResult.not_started(time.time())
            started_at = time.time()
            self._playing = True
            assert proc.stdin is not None
            try:
                while (chunk := await next_chunk(chunks, stop_event)) is not None:
                    proc.stdin.write(scale_pcm(chunk[: len(chunk) - len(chunk) % SAMPLE_WIDTH], volume))
                    await proc.stdin.drain()
                proc.stdin.close()
                if not stop_event.is_set():
                    await proc.wait()
            except (BrokenPipeError, ConnectionResetError):
                await proc.wait()
            finished_at = time.time()
            if stop_event.is_set():
                return PlaybackResult(started_at, finished_at, completed=False)
            if proc.returncode not in (0, None):
                raise AudioOutputError(f"aplay on {self.device!r} failed ({proc.returncode})")
            return PlaybackResult(started_at, finished_at, completed=True)

    async def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop(self) -> None:
        """Kill aplay now (a pending playback is cancelled too); then play() may be called."""
        stop_event, ended = self._stop_event, self._ended
        if stop_event is None or ended is None:
            return
        stop_event.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await ended.wait()
