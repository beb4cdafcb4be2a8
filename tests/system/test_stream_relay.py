"""Issue 3 item 5 acceptance: relay of a radio stream for a window, with dead-air fallback.

A small HTTP server in the test plays the radio station: it streams an MP3 tone that
ffmpeg encodes in real time, and the test can cut it (connections dropped, 503 after)
and restore it. The station relays it, detects the dead air, reports it to the
controller, plays the filler, resumes when the source is back, and gives way to a
normal bulletin. A source outside the allow-list is refused in Vietnamese.
"""

from __future__ import annotations

import array
import asyncio
import math
import shutil
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from communecast.mosquitto import free_port
from device_agents.common.clock import REAL_CLOCK
from device_agents.hardware.audio import AlsaAudioOutput
from device_agents.speaker.stream import BYTES_PER_S, PcmQueue, StreamFeed
from firmware_sim.audio_sink import StreamRecording, dominant_hz
from protocol.messages import StreamRef
from testkit.api import Api
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone

DEAD_AIR_S = 2.0


class RadioServer:
    """An Icecast-like source: GET /vov1.mp3 streams MP3 made by ffmpeg in real time."""

    def __init__(self) -> None:
        self.port = free_port()
        self.freq = 1000
        self.up = True
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/vov1.mp3"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._live.add(task)
        proc: asyncio.subprocess.Process | None = None
        try:
            await reader.readuntil(b"\r\n\r\n")
            if not self.up:
                writer.write(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\n\r\n")
            proc = await asyncio.create_subprocess_exec(
                "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
                "-i", f"sine=frequency={self.freq}:sample_rate=22050", "-ac", "1", "-c:a", "libmp3lame",
                "-b:a", "48k", "-f", "mp3", "-flush_packets", "1", "pipe:1",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert proc.stdout is not None
            while data := await proc.stdout.read(1024):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._live.discard(task)
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
            writer.close()

    async def cut(self) -> None:
        """The radio goes off the air: live connections drop, new ones get 503."""
        self.up = False
        for task in list(self._live):
            task.cancel()
        await asyncio.gather(*self._live, return_exceptions=True)

    def restore(self, freq: int) -> None:
        self.freq, self.up = freq, True

    async def close(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def radio() -> AsyncIterator[RadioServer]:
    server = RadioServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def relay_system(tmp_path: Path, radio: RadioServer) -> AsyncIterator[System]:
    """SQLite only: the relay path does not depend on the database (test_live_db.py covers both)."""
    sys_ = System(tmp_path / "system", f"sqlite:///{tmp_path / 'controller.db'}",
                  controller_env={"COMMUNECAST_RELAY_SOURCES": f'["{radio.url}"]'})
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()
        print("---- controller log (tail) ----\n" + sys_.controller.log_tail(2000))


def sounds_like(freq: float, seconds: float = 0.5) -> Callable[[StreamRecording], bool]:
    """The last `seconds` the station received are a tone of `freq` (within 5 %)."""

    def check(rec: StreamRecording) -> bool:
        tail = bytes(rec.pcm[-int(seconds * rec.rate) * 2 :])
        return len(tail) == int(seconds * rec.rate) * 2 and abs(dominant_hz(tail) - freq) < 0.05 * freq

    return check


async def events(system: System, device_id: int, kind: str) -> list[dict]:
    return await system.api_json("GET", f"/api/v1/devices/{device_id}/events?kind={kind}")


async def test_relay_dead_air_fallback_recovery_and_preemption(
    relay_system: System, radio: RadioServer, tmp_path: Path
) -> None:
    system = relay_system
    api = Api.of(system)
    (station,) = await system.add_stations(1)
    filler = await api.upload(tone(tmp_path / "filler.wav", freq=440, seconds=3))
    bulletin = await api.upload(tone(tmp_path / "bulletin.wav", freq=3000, seconds=1.5))

    refused = await system.api("POST", "/api/v1/relays", json={
        "source_url": "http://evil.example/stream.mp3", "targets": {"all": True},
        "end_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()})  # fmt: skip
    assert refused.status_code == 422
    assert refused.json()["code"] == "relay.source_not_allowed"
    assert "không nằm trong danh sách nguồn tiếp sóng được phép" in refused.json()["detail"]

    relay = await system.api_json("POST", "/api/v1/relays", json={
        "title": "Tiếp sóng VOV1", "source_url": radio.url, "format": "mp3", "targets": {"all": True},
        "start_at": datetime.now(UTC).isoformat(),
        "end_at": (datetime.now(UTC) + timedelta(seconds=60)).isoformat(),
        "fallback": "filler", "filler": [filler["sha256"]], "dead_air_s": DEAD_AIR_S,
    })  # fmt: skip
    assert relay["priority"] == "relay" and relay["stations"] == 1

    # The station relays the radio.
    rec = await station.sink.wait_stream(sounds_like(1000), timeout=15)

    # The radio goes off the air: dead air is reported and the filler plays.
    await radio.cut()
    cut_at = time.time()
    faults = await eventually(lambda: events(system, station.device_id, "fault"),
                              lambda evs: any(e.get("reason") == "dead_air" for e in evs),
                              timeout=DEAD_AIR_S + 6, what="a dead_air fault at the controller")  # fmt: skip
    reported_s = time.time() - cut_at
    fault = next(e for e in faults if e.get("reason") == "dead_air")
    assert fault["detail"]["cause"] == "no_data"
    assert fault["item_id"] == relay["item_id"]
    await station.sink.wait_stream(sounds_like(440), timeout=5)
    filler_s = time.time() - cut_at

    # The radio is back (another programme: 1.5 kHz): the relay resumes, recovery is reported.
    radio.restore(1500)
    restored_at = time.time()
    await station.sink.wait_stream(sounds_like(1500), timeout=10)
    resumed_s = time.time() - restored_at
    await eventually(lambda: events(system, station.device_id, "recovered"), lambda evs: len(evs) == 1,
                     timeout=5, what="the recovery event")  # fmt: skip
    assert len([e for e in await events(system, station.device_id, "fault")
                if e.get("reason") == "dead_air"]) == 1  # once per episode  # fmt: skip
    print(f"\ndead air reported {reported_s:.1f} s after the cut (threshold {DEAD_AIR_S} s); filler heard "
          f"after {filler_s:.1f} s; relay heard again {resumed_s:.1f} s after the source came back")

    # A normal bulletin preempts the relay (relay ranks below normal); the relay resumes after it.
    streams_before = len(station.sink.streams)
    bc = await system.api_json("POST", "/api/v1/broadcasts", json={
        "title": "Thông báo lịch tiêm chủng", "media_sha256": bulletin["sha256"], "targets": {"all": True},
        "priority": "normal",
        "start_at": (datetime.now(UTC) + timedelta(seconds=2)).isoformat()})  # fmt: skip
    played = await station.sink.wait_for(lambda p: p.files != ("stream",), timeout=15)
    assert played.completed
    assert rec.completed is False  # the relay was cut short for the bulletin
    assert rec.finished_at is not None and rec.finished_at <= played.started_at + 0.1
    again = await station.sink.wait_stream(sounds_like(1500), timeout=10, start_index=streams_before)
    # Back on air after the bulletin, never over it.
    assert again.started_at is not None and again.started_at >= played.finished_at - 0.05
    rows = await system.api_json("GET", "/api/v1/play-log")
    assert (relay["item_id"], "playing") in {(r["item_id"], r["status"]) for r in rows}  # a pause only
    # The operator ends the relay: now it is over, and says why.
    assert (await system.api("POST", f"/api/v1/relays/{relay['id']}/cancel")).status_code == 200
    rows = await eventually(lambda: system.api_json("GET", "/api/v1/play-log"),
                            lambda rows: {(r["item_id"], r["status"]) for r in rows} >= {
                                (relay["item_id"], "interrupted"), (f"b{bc['id']}", "played")},
                            timeout=10, what="relay ended, bulletin played")  # fmt: skip
    relay_row = next(r for r in rows if r["item_id"] == relay["item_id"])
    assert "cancel" in (relay_row["reason"] or "")


async def test_digital_silence_counts_as_dead_air_for_a_relay() -> None:
    """A source that keeps sending bytes, but only zeros (a studio gone quiet), is dead air too."""

    def pcm(freq: float, seconds: float) -> bytes:
        n = int(seconds * 16000)
        wave = (int(8000 * math.sin(2 * math.pi * freq * k / 16000)) for k in range(n))
        return array.array("h", wave).tobytes()

    causes: list[str] = []
    recovered: list[float] = []
    queue = PcmQueue(BYTES_PER_S)
    ref = StreamRef(url="http://radio.example/x.mp3", fallback="filler", dead_air_s=0.5)
    feed = StreamFeed(ref, queue, clock=REAL_CLOCK, end_at=time.time() + 10, jitter_s=0.0, silence_dbfs=-60,
                      filler=pcm(440, 1.0), on_dead_air=causes.append, on_recovered=recovered.append)

    async def source() -> None:
        for block in [pcm(1000, 0.1)] * 5 + [bytes(3200)] * 10:  # 0.5 s of tone, then 1 s of zeros
            queue.put(block)
            await asyncio.sleep(0.1)
        while not causes or len(heard) < 3:
            queue.put(bytes(3200))
            await asyncio.sleep(0.1)
        queue.put(pcm(1500, 0.3))  # the studio is back
        await asyncio.sleep(0.3)
        queue.close()

    heard: list[float] = []
    feeder = asyncio.create_task(source())
    async for chunk in feed.chunks():
        heard.append(dominant_hz(chunk))
    await feeder
    assert causes == ["silence"] and len(recovered) == 1
    assert any(abs(f - 1000) < 50 for f in heard)
    assert any(abs(f - 440) < 25 for f in heard)  # the filler played in the silence
    assert abs(heard[-1] - 1500) < 75  # then the source again


@pytest.mark.skipif(shutil.which("aplay") is None, reason="aplay (alsa-utils) not installed")
async def test_alsa_output_plays_a_stream_and_stops_on_request() -> None:
    """The Pi's output: chunks piped into aplay as they come; the end of the stream completes it,
    stop() cuts an endless one short."""
    out = AlsaAudioOutput(device="null")

    async def chunks(count: int | None) -> AsyncIterator[bytes]:
        i = 0
        while count is None or i < count:
            yield bytes(640)
            await asyncio.sleep(0.02)
            i += 1

    start_at = time.time() + 0.3
    result = await out.play_stream(chunks(10), start_at=start_at, volume=70)
    assert result.completed and abs(result.started_at - start_at) < 0.05

    endless = asyncio.create_task(out.play_stream(chunks(None), start_at=time.time(), volume=70))
    await eventually(lambda: asyncio.sleep(0, out.playing), bool, timeout=3, what="aplay playing")
    await out.stop()
    stopped = await asyncio.wait_for(endless, timeout=2)
    assert not stopped.completed and not out.playing
