"""A simulated speaker: implements AudioOutput and records what it "played" and when.

It decodes the real files with the same decoder as the Pi, waits for the real start
instant and lasts the real duration, so tests measure the agent's timing, not a mock's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from device_agents.common.clock import REAL_CLOCK, Clock
from device_agents.hardware.audio import PlaybackResult, PreparedAudio
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


class SimAudioSink:
    """AudioOutput that keeps ``playbacks`` and optionally appends them to a JSONL file."""

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
        self._fingerprints: dict[int, tuple[PreparedAudio, str]] = {}

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
        if cached is not None and cached[0] is prepared:
            return cached[1]
        fp = await asyncio.to_thread(fingerprint_pcm, prepared.pcm, prepared.rate)
        if len(self._fingerprints) >= _FINGERPRINT_CACHE:
            self._fingerprints.pop(next(iter(self._fingerprints)))
        # The PreparedAudio is kept in the entry so its id cannot be reused meanwhile.
        self._fingerprints[id(prepared)] = (prepared, fp)
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
        if await clock.sleep_until_or_event(start_at, stop_event):
            started_at = finished_at = clock.time()
        else:
            started_at = clock.time()
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
        await asyncio.to_thread(self._journal, playback)
        log.info(
            "sim speaker played %s start error %+.1f ms, %s",
            playback.files,
            playback.start_error_s * 1000,
            "completed" if completed else "stopped",
        )
        await self._notify()
        return PlaybackResult(started_at=started_at, finished_at=finished_at, completed=completed)

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
