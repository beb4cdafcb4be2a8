"""A simulated speaker: implements AudioOutput and records what it "played" and when.

It decodes the real files with the same decoder as the Pi, waits for the real start
instant and lasts the real duration, so tests measure the agent's timing, not a mock's.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import json
import logging
import sys
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from device_agents.common.clock import REAL_CLOCK, Clock
from device_agents.hardware.audio import STREAM_RATE, PlaybackResult, PreparedAudio, next_chunk
from device_agents.hardware.decode import decode_pcm
from firmware_sim.fingerprint import fingerprint_pcm

log = logging.getLogger(__name__)

DEFAULT_RATE = 16000
_FINGERPRINT_CACHE = 8


@dataclass(frozen=True)
class Playback:
    """One playback as the speaker experienced it."""

    requested_start: float
    started_at: float
    finished_at: float
    duration_s: float  # length of the audio that was scheduled
    fingerprint: str
    volume: int
    completed: bool
    files: tuple[str, ...]

    @property
    def start_error_s(self) -> float:
        """How late (positive) or early the first sample went out."""
        return self.started_at - self.requested_start

    @property
    def played_s(self) -> float:
        """How long it actually sounded (shorter when stopped)."""
        return self.finished_at - self.started_at


# A stream's samples are kept up to this length (a long relay only keeps its start).
STREAM_KEEP_S = 60.0
# Like a sound card's ring buffer: the sink takes samples up to this far ahead of what sounds,
# then makes the writer wait (so fallback audio is produced in real time, not all at once).
STREAM_AHEAD_S = 0.25


@dataclass
class StreamRecording:
    """One streamed playback: every sample, when it arrived and when it sounded."""

    requested_start: float
    rate: int
    volume: int
    pcm: bytearray = field(default_factory=bytearray)
    # (arrived_at, first sample index of the chunk, when that sample sounded)
    chunks: list[tuple[float, int, float]] = field(default_factory=list)
    finished_at: float | None = None
    completed: bool | None = None
    first_sound_at: float | None = None

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def started_at(self) -> float | None:
        return self.first_sound_at

    def sounded_at(self, sample: int) -> float:
        """Wall time at which sample number ``sample`` sounded."""
        at = next((c for c in reversed(self.chunks) if c[1] <= sample), None)
        if at is None:
            raise IndexError(sample)
        return at[2] + (sample - at[1]) / self.rate

    def sounding(self, t0: float, t1: float) -> bytes:
        """The samples that sounded between wall times t0 and t1 (gaps left out)."""
        out = bytearray()
        for i, (_, first, at) in enumerate(self.chunks):
            last = self.chunks[i + 1][1] if i + 1 < len(self.chunks) else self.samples
            lo = max(first, first + int((t0 - at) * self.rate))
            hi = min(last, first + int((t1 - at) * self.rate))
            if hi > lo:
                out += self.pcm[2 * lo : 2 * hi]
        return bytes(out)


def dominant_hz(pcm: bytes, rate: int = STREAM_RATE) -> float:
    """Frequency of a tone from its zero crossings (0.0 for silence): enough for test tones."""
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    if len(samples) < 2 or max(abs(min(samples)), max(samples)) < 100:
        return 0.0
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return crossings * rate / (2 * len(samples))


class SimAudioSink:
    """AudioOutput that keeps ``playbacks`` and optionally appends them to a JSONL file."""

    stream_keep_s = STREAM_KEEP_S  # samples of each stream kept for tests (0: none, e.g. a fleet)

    def __init__(
        self, state_dir: Path | None = None, rate: int = DEFAULT_RATE, clock: Clock | None = None
    ) -> None:
        self.state_dir = state_dir
        self.clock = clock or REAL_CLOCK  # the speaker "sounds" in this clock's time
        self.rate = rate
        self.playbacks: list[Playback] = []
        self._volume = 0
        self._playing = False
        self._stop_event: asyncio.Event | None = None
        self._ended: asyncio.Event | None = None
        self._changed = asyncio.Condition()
        # id -> (a weak reference to the audio, its fingerprint): weak, so the simulated card does
        # not keep decoded audio alive after the agent lets it go (a real card keeps none; `bench
        # agent` counts this process's RSS as the agent's).
        self._fingerprints: dict[int, tuple[weakref.ref[PreparedAudio], str]] = {}
        self.streams: list[StreamRecording] = []

    @property
    def playing(self) -> bool:
        """True from the start instant until the end (or stop)."""
        return self._playing

    @property
    def volume(self) -> int:
        """Volume of the current (or last) playback, 0..100."""
        return self._volume

    @property
    def journal_path(self) -> Path | None:
        """Where playbacks are appended as JSON lines, if anywhere."""
        return None if self.state_dir is None else self.state_dir / "playbacks.jsonl"

    async def prepare(self, files: Sequence[Path]) -> PreparedAudio:
        """Decode like the Pi does, and fingerprint now so play() starts on time."""
        paths = tuple(Path(f) for f in files)
        pcm = await decode_pcm(paths, self.rate)
        prepared = PreparedAudio(pcm=pcm, rate=self.rate, files=paths)
        await self._fingerprint(prepared)
        return prepared

    async def _fingerprint(self, prepared: PreparedAudio) -> str:
        cached = self._fingerprints.get(id(prepared))
        if cached is not None and cached[0]() is prepared:
            return cached[1]
        fp = await asyncio.to_thread(fingerprint_pcm, prepared.pcm, prepared.rate)
        if len(self._fingerprints) >= _FINGERPRINT_CACHE:
            self._fingerprints.pop(next(iter(self._fingerprints)))
        # A reused id is told apart by the dead reference.
        self._fingerprints[id(prepared)] = (weakref.ref(prepared), fp)
        return fp

    async def play(self, prepared: PreparedAudio, *, start_at: float, volume: int) -> PlaybackResult:
        """Wait for ``start_at``, then "sound" for the audio's duration unless stopped."""
        if self._stop_event is not None:
            raise RuntimeError("already playing; stop() the current playback first")
        stop_event, ended = asyncio.Event(), asyncio.Event()
        self._stop_event, self._ended = stop_event, ended
        try:
            return await self._play(prepared, start_at, min(max(volume, 0), 100), stop_event)
        finally:
            self._stop_event = self._ended = None
            ended.set()

    async def _play(
        self, prepared: PreparedAudio, start_at: float, volume: int, stop_event: asyncio.Event
    ) -> PlaybackResult:
        fingerprint = await self._fingerprint(prepared)
        clock = self.clock
        began = await self._wait_for_start(start_at, stop_event)
        if began is None:
            started_at = finished_at = clock.time()
        else:
            started_at = began
            self._volume = volume
            self._playing = True
            try:
                await self._notify()
                # returns False when it played to the end
                await clock.sleep_until_or_event(started_at + prepared.duration_s, stop_event)
                finished_at = clock.time()
            finally:
                self._playing = False
        completed = not stop_event.is_set()
        playback = Playback(
            requested_start=start_at,
            started_at=started_at,
            finished_at=finished_at,
            duration_s=prepared.duration_s,
            fingerprint=fingerprint,
            volume=volume,
            completed=completed,
            files=tuple(str(f) for f in prepared.files),
        )
        self.playbacks.append(playback)
        if self.journal_path is not None:  # a fleet keeps no journal: no thread hop per playback
            await asyncio.to_thread(self._journal, playback)
        log.info(
            "sim speaker played %s start error %+.1f ms, %s",
            playback.files,
            playback.start_error_s * 1000,
            "completed" if completed else "stopped",
        )
        await self._notify()
        return PlaybackResult(started_at=started_at, finished_at=finished_at, completed=completed)

    async def _wait_for_start(self, start_at: float, stop_event: asyncio.Event) -> float | None:
        """When the first sample sounded, or None when stop() came first."""
        if await self.clock.sleep_until_or_event(start_at, stop_event):
            return None
        return self.clock.time()

    async def play_stream(
        self, chunks: AsyncIterator[bytes], *, start_at: float, volume: int
    ) -> PlaybackResult:
        """Record a stream sample by sample, "sounding" each chunk in real time from its arrival."""
        if self._stop_event is not None:
            raise RuntimeError("already playing; stop() the current playback first")
        stop_event, ended = asyncio.Event(), asyncio.Event()
        self._stop_event, self._ended = stop_event, ended
        try:
            return await self._play_stream(chunks, start_at, min(max(volume, 0), 100), stop_event)
        finally:
            self._stop_event = self._ended = None
            ended.set()

    async def _play_stream(
        self, chunks: AsyncIterator[bytes], start_at: float, volume: int, stop_event: asyncio.Event
    ) -> PlaybackResult:
        clock = self.clock
        rec = StreamRecording(requested_start=start_at, rate=STREAM_RATE, volume=volume)
        if await clock.sleep_until_or_event(start_at, stop_event):
            return PlaybackResult.not_started(clock.time())
        self.streams.append(rec)
        self._volume = volume
        self._playing = True
        sounding_until = 0.0  # wall time the samples taken so far have all sounded
        sample = 0
        try:
            await self._notify()
            while (chunk := await next_chunk(chunks, stop_event)) is not None:
                now = clock.time()
                sounding_until = max(sounding_until, now)  # an underrun is a gap of silence
                usable = chunk[: len(chunk) - len(chunk) % 2]
                if rec.first_sound_at is None:
                    rec.first_sound_at = sounding_until
                if sample / STREAM_RATE < self.stream_keep_s:  # beyond it only the timing is kept
                    rec.chunks.append((now, sample, sounding_until))
                    rec.pcm += usable
                sample += len(usable) // 2
                sounding_until += len(usable) / (2 * STREAM_RATE)
                await self._notify()
                if sounding_until - now > STREAM_AHEAD_S:
                    await clock.sleep_until_or_event(sounding_until - STREAM_AHEAD_S, stop_event)
            if not stop_event.is_set():  # the last samples still have to sound
                await clock.sleep_until_or_event(sounding_until, stop_event)
        finally:
            self._playing = False
        finished_at = clock.time()
        rec.finished_at, rec.completed = finished_at, not stop_event.is_set()
        started_at = rec.started_at if rec.started_at is not None else finished_at
        fingerprint = await asyncio.to_thread(fingerprint_pcm, bytes(rec.pcm), STREAM_RATE)
        playback = Playback(
            requested_start=start_at, started_at=started_at, finished_at=finished_at,
            duration_s=sample / STREAM_RATE, fingerprint=fingerprint, volume=volume,
            completed=bool(rec.completed), files=("stream",),
        )  # fmt: skip
        self.playbacks.append(playback)
        await asyncio.to_thread(self._journal, playback)
        log.info("sim speaker streamed %.1f s, %s", playback.duration_s,
                 "completed" if rec.completed else "stopped")
        await self._notify()
        return PlaybackResult(started_at=started_at, finished_at=finished_at, completed=bool(rec.completed))

    async def wait_stream(
        self, predicate: Callable[[StreamRecording], bool], timeout: float, *, start_index: int = 0
    ) -> StreamRecording:
        """First stream (from ``start_index``) for which ``predicate`` holds, checked as it grows."""

        def match() -> StreamRecording | None:
            return next((r for r in self.streams[start_index:] if predicate(r)), None)

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: match() is not None)
        except TimeoutError:
            got = [(r.samples / STREAM_RATE, r.completed) for r in self.streams]
            raise TimeoutError(f"no matching stream in {timeout}s; streams (s, completed): {got}") from None
        found = match()
        assert found is not None
        return found

    def _journal(self, playback: Playback) -> None:
        path = self.journal_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(playback), ensure_ascii=False) + "\n")

    async def stop(self) -> None:
        """End the current or pending playback; on return a new play() may start."""
        stop_event, ended = self._stop_event, self._ended
        if stop_event is not None and ended is not None:
            stop_event.set()
            await ended.wait()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(
        self,
        predicate: Callable[[Playback], bool],
        timeout: float,
        *,
        start_index: int = 0,
    ) -> Playback:
        """First recorded playback (from ``start_index``) matching ``predicate``."""

        def match() -> Playback | None:
            return next((p for p in self.playbacks[start_index:] if predicate(p)), None)

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: match() is not None)
        except TimeoutError:
            raise TimeoutError(
                f"no matching playback within {timeout}s; recorded: {self.playbacks!r}"
            ) from None
        found = match()
        assert found is not None
        return found

    async def wait_playing(self, timeout: float) -> None:
        """Wait until samples are "going out" (tests check the amplifier current then)."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self._playing)
        except TimeoutError:
            raise TimeoutError(f"sink did not start playing within {timeout}s") from None
