"""Streamed items on a speaker station (docs/live.md): live voice and relays of a radio stream.

A ScheduleItem with a `stream` is played from its start until `end_at` (or, for live voice,
until the controller ends the stream). The audio is fetched with httpx and, unless it is
already S16LE mono at the output's rate, decoded by ffmpeg reading from a pipe (ffmpeg
never touches the network). What comes out goes to `AudioOutput.play_stream`.

Dead air — no audio for `dead_air_s`, or (relays) digital silence that long — is reported
once per episode (a `fault` event, reason "dead_air") and the configured fallback (filler
from the media cache, or silence) plays until the source is back (a `recovered` event).
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import logging
import math
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from device_agents.common.clock import Clock
from device_agents.common.media_cache import MediaCache, MediaError
from device_agents.hardware.audio import STREAM_RATE, PlaybackResult
from device_agents.hardware.decode import AudioDecodeError, decode_pcm
from device_agents.speaker.kit import SpeakerKit
from protocol.messages import EventKind, ScheduleItem, StreamRef

log = logging.getLogger(__name__)

BYTES_PER_S = 2 * STREAM_RATE
FALLBACK_CHUNK_S = 0.1
FALLBACK_AHEAD_S = 0.3  # fallback is made this far ahead of real time, no further
TICK_S = 0.05
CONNECT_TIMEOUT_S = 5.0
RETRY_MAX_S = 2.0
RESUME_MIN_S = 1.0  # a paused stream resumes only if at least this much of its window is left


class StreamDown(Exception):
    """The source answered, but not with audio."""


class PcmQueue:
    """Decoded audio waiting to be played; the oldest is dropped beyond `max_bytes` (latency cap)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(max_bytes - max_bytes % 2, 2)
        self._parts: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.dropped = 0
        self.eof = False
        self._ready = asyncio.Event()

    def put(self, pcm: bytes) -> None:
        if not pcm:
            return
        self._parts.append(pcm)
        self.size += len(pcm)
        while self.size > self.max_bytes and self._parts:
            excess = self.size - self.max_bytes
            head = self._parts[0]
            cut = min(len(head), excess + excess % 2)
            if cut >= len(head):
                self._parts.popleft()
            else:
                self._parts[0] = head[cut:]
            self.size -= cut
            self.dropped += cut
        self._ready.set()

    def close(self) -> None:
        self.eof = True
        self._ready.set()

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        if not self.eof:
            self._ready.clear()
        return data

    async def wait(self, timeout: float) -> None:
        if timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)


def rms_dbfs(pcm: bytes) -> float:
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return -120.0
    mean_square = sum(s * s for s in samples) / len(samples)
    return -120.0 if mean_square <= 0 else 10 * math.log10(mean_square) - 20 * math.log10(32768)


class StreamSource:
    """Fetches one stream URL and decodes it into a PcmQueue, reconnecting until cancelled.

    A live stream that ends cleanly (or answers 404/410) is over: the queue is closed.
    A relay that ends or fails is retried with a growing pause (at most RETRY_MAX_S).
    """

    def __init__(self, url: str, ref: StreamRef, http: httpx.AsyncClient, queue: PcmQueue) -> None:
        self.url = url
        self.ref = ref
        self.http = http
        self.queue = queue
        self.connects = 0
        self._retry = 0.5
        self._odd = b""

    async def run(self) -> None:
        while True:
            try:
                if await self._once():
                    self.queue.close()
                    return
            except (httpx.HTTPError, OSError, StreamDown, AudioDecodeError) as exc:
                log.info("stream %s: %s", _public(self.url), exc or type(exc).__name__)
            await asyncio.sleep(self._retry)
            self._retry = min(self._retry * 2, RETRY_MAX_S)

    async def _once(self) -> bool:
        live = self.ref.kind == "live"
        read_timeout = max(self.ref.dead_air_s, 5.0)
        timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=read_timeout)
        headers = {"X-Stream-Token": self.ref.token} if self.ref.token else None
        async with self.http.stream("GET", self.url, timeout=timeout, headers=headers) as resp:
            if live and resp.status_code in (404, 410):
                return True
            if resp.status_code != 200:
                raise StreamDown(f"HTTP {resp.status_code}")
            self.connects += 1
            self._retry = 0.5
            self._odd = b""
            if self.ref.format == "s16le" and self.ref.rate == STREAM_RATE:
                async for data in resp.aiter_raw():
                    self._push(data)
            else:
                await self._decode(resp)
        return live

    def _push(self, data: bytes) -> None:
        data = self._odd + data
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        self.queue.put(data[:cut])

    async def _decode(self, resp: httpx.Response) -> None:
        fmt = self.ref.format
        given = ["-f", fmt] if fmt else []
        if fmt == "s16le":
            given += ["-ar", str(self.ref.rate), "-ac", "1"]
        proc = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-fflags", "nobuffer",
            # With a format hint ffmpeg needs no probing: output starts with the first frame.
            "-probesize", "32" if fmt else "4096", "-analyzeduration", "0", *given, "-i", "pipe:0",
            "-vn", "-ac", "1", "-ar", str(STREAM_RATE), "-f", "s16le", "-flush_packets", "1", "pipe:1",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        stdin = proc.stdin

        async def feed() -> None:
            try:
                async for data in resp.aiter_raw():
                    stdin.write(data)
                    await stdin.drain()
            finally:
                with contextlib.suppress(Exception):
                    stdin.close()

        feeder = asyncio.create_task(feed())
        try:
            while data := await proc.stdout.read(4096):
                self._push(data)
            await feeder  # a network error surfaces here
        finally:
            feeder.cancel()
            with contextlib.suppress(BaseException):
                await feeder
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()


class StreamFeed:
    """The chunks a station plays for one streamed item: source audio, or fallback in dead air."""

    def __init__(
        self,
        ref: StreamRef,
        queue: PcmQueue,
        *,
        clock: Clock,
        end_at: float,
        jitter_s: float,
        silence_dbfs: float,
        filler: bytes = b"",
        on_dead_air: Callable[[str], None] = lambda _cause: None,
        on_recovered: Callable[[float], None] = lambda _lasted: None,
    ) -> None:
        self.ref = ref
        self.queue = queue
        self.clock = clock
        self.end_at = end_at
        self.jitter_s = jitter_s
        self.silence_dbfs = silence_dbfs
        self.filler = filler[: len(filler) - len(filler) % 2]
        self.on_dead_air = on_dead_air
        self.on_recovered = on_recovered
        self.dead_air_episodes = 0
        # Live voice pauses are normal; only a relay's digital silence counts as dead air.
        self._silence_is_dead = ref.kind == "relay"

    def _sounds(self, pcm: bytes) -> bool:
        return not self._silence_is_dead or rms_dbfs(pcm) >= self.silence_dbfs

    async def chunks(self) -> AsyncIterator[bytes]:
        clock, queue, ref = self.clock, self.queue, self.ref
        last_sound = last_data = clock.time()
        held = bytearray()  # the jitter buffer before the first sample sounds
        first_at: float | None = None
        primed = self.jitter_s <= 0
        while True:
            now = clock.time()
            if now >= self.end_at:
                return
            if queue.eof and not queue.size:
                if held:
                    yield bytes(held)
                return
            deadline = min(self.end_at, last_sound + ref.dead_air_s, last_data + ref.dead_air_s)
            if not primed and first_at is not None:
                deadline = min(deadline, first_at + self.jitter_s)
            await queue.wait(min(TICK_S, deadline - now))
            got = queue.take()
            now = clock.time()
            if got:
                last_data = now
                if self._sounds(got):
                    last_sound = now
                if primed:
                    yield got
                else:
                    held += got
                    first_at = now if first_at is None else first_at
            if not primed and first_at is not None and (
                len(held) >= self.jitter_s * BYTES_PER_S or now - first_at >= self.jitter_s
            ):
                primed = True
                yield bytes(held)
                held.clear()
            if now - last_data >= ref.dead_air_s or now - last_sound >= ref.dead_air_s:
                cause = "no_data" if now - last_data >= ref.dead_air_s else "silence"
                async for chunk in self._dead_air(cause):
                    yield chunk
                last_sound = last_data = clock.time()
                primed = True

    async def _dead_air(self, cause: str) -> AsyncIterator[bytes]:
        """Play the fallback until the source sounds again, the stream ends or the window closes."""
        clock, queue = self.clock, self.queue
        self.dead_air_episodes += 1
        began = made_until = clock.time()
        self.on_dead_air(cause)
        step = int(FALLBACK_CHUNK_S * BYTES_PER_S)
        pos = 0
        queue.take()  # what is queued is the silence that made this dead air
        while True:
            now = clock.time()
            if now >= self.end_at or (queue.eof and not queue.size):
                return
            got = queue.take()
            if got and self._sounds(got):
                self.on_recovered(now - began)
                yield got
                return
            if made_until - now > FALLBACK_AHEAD_S:
                await queue.wait(made_until - now - FALLBACK_AHEAD_S)
                continue
            made_until = max(made_until, now)
            if self.ref.fallback == "filler" and self.filler:
                chunk = self.filler[pos : pos + step]
                pos = (pos + step) % len(self.filler) if pos + step < len(self.filler) else 0
            else:
                chunk = bytes(step)
            made_until += len(chunk) / BYTES_PER_S
            yield chunk


def _public(url: str) -> str:
    """A URL for logs and events: never the live token in its query."""
    return url.split("?", 1)[0]


def resolve_url(url: str, controller_url: str) -> str:
    return controller_url.rstrip("/") + url if url.startswith("/") else url


async def _filler_pcm(uid: str, media: MediaCache, ref: StreamRef) -> bytes:
    if ref.fallback != "filler" or not ref.filler:
        return b""
    try:
        paths = [await media.ensure(m) for m in ref.filler]
        return await decode_pcm(paths, STREAM_RATE)
    except (MediaError, AudioDecodeError) as exc:
        log.warning("%s: filler unavailable, silence instead: %s", uid, exc)
        return b""


async def run_stream_item(kit: SpeakerKit, item: ScheduleItem) -> None:
    """The streamed counterpart of a file item: the same on-air rules (speaker/on_air.py)."""
    ref = item.stream
    assert ref is not None and item.end_at is not None
    clock, on_air = kit.clock, kit.on_air
    start, end = item.start_at.timestamp(), item.end_at.timestamp()
    if clock.time() >= end:
        on_air.finish(item, EventKind.MISSED, "missed", reason="stream window passed before it could play")
        return
    filler = await _filler_pcm(kit.uid, kit.media, ref)
    await clock.sleep_until(start - kit.config.relay_lead_s)

    def missed() -> str | None:
        return "horn busy for the whole window" if clock.time() >= end else None

    async with on_air.scheduled(item, missed=missed) as on:
        if on:
            await _play_window(kit, item, ref, filler, start, end)


async def _play_window(
    kit: SpeakerKit, item: ScheduleItem, ref: StreamRef, filler: bytes, start: float, end: float
) -> None:
    """Play the stream to the end of its window. A higher item (a bulletin during a relay) only
    pauses it: the horn is handed over and the stream resumes after, while the window lasts."""
    clock, on_air = kit.clock, kit.on_air
    pauses: list[str] = []
    while True:
        outcome = await _play_stream(kit, item, ref, filler, start, end, announce=not pauses)
        if outcome is None:
            return  # failed, already reported
        result, detail = outcome
        why = on_air.stopped(item.item_id) or "stopped"
        detail["pauses"] = len(pauses)
        resumable = (not result.completed and why.startswith("preempted by")
                     and clock.time() < end - RESUME_MIN_S)
        if not resumable:
            if result.completed:
                on_air.finish(item, EventKind.PLAY_FINISHED, "played", detail=detail)
            else:
                on_air.finish(item, EventKind.INTERRUPTED, "interrupted", reason=why, detail=detail)
            return
        pauses.append(why)
        log.info("%s: %s paused (%s); resumes when the horn is free", kit.uid, item.item_id, why)
        await on_air.hand_over(item)  # waits for the bulletin to end; a cancel meanwhile is kept
        stopped = on_air.stopped(item.item_id)
        if stopped or clock.time() >= end - RESUME_MIN_S:
            detail["pauses"] = len(pauses)
            on_air.finish(item, EventKind.INTERRUPTED, "interrupted", reason=stopped or pauses[-1],
                          detail=detail)
            return
        start = clock.time()


async def _play_stream(
    kit: SpeakerKit, item: ScheduleItem, ref: StreamRef, filler: bytes, start: float, end: float,
    *, announce: bool = True,
) -> tuple[PlaybackResult, dict[str, Any]] | None:
    """One stretch of the stream, until the window ends or something stops it."""
    clock, cfg, on_air, events = kit.clock, kit.config, kit.on_air, kit.events
    volume = item.volume if item.volume is not None else kit.volume.get()
    url = resolve_url(ref.url, cfg.controller_url)
    ids: dict[str, Any] = {"item_id": item.item_id, "broadcast_id": item.broadcast_id}

    def dead_air(cause: str) -> None:
        log.warning("%s: dead air on %s (%s); fallback %s", kit.uid, _public(url), cause, ref.fallback)
        events.emit(EventKind.FAULT, reason="dead_air", **ids, detail={
            "source": _public(url), "cause": cause, "dead_air_s": ref.dead_air_s, "fallback": ref.fallback})

    def recovered(lasted: float) -> None:
        log.info("%s: %s is back after %.1f s", kit.uid, _public(url), lasted)
        events.emit(EventKind.RECOVERED, reason="dead_air", **ids,
                    detail={"source": _public(url), "lasted_s": round(lasted, 2)})

    queue = PcmQueue(int(cfg.stream_max_latency_s * BYTES_PER_S))
    feed = StreamFeed(ref, queue, clock=clock, end_at=end, jitter_s=cfg.stream_jitter_s,
                      silence_dbfs=cfg.stream_silence_dbfs, filler=filler,
                      on_dead_air=dead_air, on_recovered=recovered)  # fmt: skip
    async with httpx.AsyncClient(follow_redirects=False) as http:
        source = StreamSource(url, ref, http, queue)
        pump = asyncio.create_task(source.run(), name=f"{kit.uid}-stream-{item.item_id}")
        try:
            play = asyncio.create_task(_start_output(kit, item, feed, start, volume))
            await clock.sleep_until(start + 0.05)
            if announce and not on_air.stopped(item.item_id):
                events.emit(EventKind.PLAY_STARTED, **ids, detail={"started_at": start, "volume": volume,
                                                                   "stream": _public(url)})
            try:
                result = await play
            except Exception as exc:
                log.exception("%s: stream %s failed", kit.uid, item.item_id)
                on_air.finish(item, EventKind.PLAY_FAILED, "failed", reason=f"audio: {exc}")
                return None
        finally:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
    detail = {
        "started_at": result.started_at, "finished_at": result.finished_at,
        "start_error_ms": round((result.started_at - start) * 1000, 2), "volume": volume,
        "dead_air_episodes": feed.dead_air_episodes, "dropped_bytes": queue.dropped,
    }  # fmt: skip
    return result, detail


async def _start_output(
    kit: SpeakerKit, item: ScheduleItem, feed: StreamFeed, start: float, volume: int
) -> PlaybackResult:
    """As a file item's output start: a stop that came first wins, with no pause in between."""
    if kit.on_air.stopped(item.item_id):
        return PlaybackResult.not_started(kit.clock.time())
    chunks = feed.chunks()
    try:
        return await kit.audio.play_stream(chunks, start_at=max(start, kit.clock.time()), volume=volume)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
