"""Fleet mode: N simulated speaker stations in one process.

Each station is a real `speaker_station` with its own MQTT connection, its own broker
account (issued through the controller's REST API, as `communecast sim stations` does),
its own SQLite store and media cache; only the hardware is simulated in-process
(`SimAudioSink` + `SimAmplifier` over the cabinet model, no pty per station).

Per-station costs (measured by `communecast sim fleet`, docs/scaling.md): one TCP socket,
an in-memory SQLite store (no file descriptor), a few asyncio tasks (link, telemetry, clock
probe) and one MQTT client (`mqtt_adapter.StationClient`, through the agent's link).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from device_agents.common.clock import Clock
from device_agents.common.clock_offset import PERIOD_S as PROBE_PERIOD_S
from device_agents.common.config import AgentConfig
from device_agents.common.store import AgentStore
from device_agents.hardware.audio import PreparedAudio
from device_agents.host.host import StationHost
from device_agents.speaker.role import SpeakerRole, speaker_station
from firmware_sim.audio_sink import SimAudioSink
from firmware_sim.relay_board import AmplifierCabinet
from firmware_sim.sim_amplifier import SimAmplifier

log = logging.getLogger(__name__)


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def raise_fd_limit(wanted: int) -> int:
    """Lift the soft open-files limit towards `wanted` (up to the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


class FleetClock(Clock):
    """The real wall clock, sleeping to an instant in one timer instead of polling.

    `Clock.sleep_until` covers the last 30 ms in 2 ms steps for a precise start on a
    Pi; a thousand stations doing that in one event loop make ~15,000 wake-ups in the
    30 ms before a bulletin and push every start late. One timer per station keeps the
    loop's error to its timer resolution (about a millisecond).
    """

    async def sleep_until(self, unix_ts: float) -> None:
        remaining = unix_ts - self.time()
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def sleep_until_or_event(self, unix_ts: float, event: asyncio.Event) -> bool:
        """One timer, no helper tasks: the base version's two tasks and asyncio.wait cost each
        station several event-loop steps at the instant, and a thousand stations take them in
        turn, so the last one started tens of milliseconds after the first."""
        if event.is_set():
            return True
        remaining = unix_ts - self.time()
        if remaining <= 0:
            return False
        try:
            async with asyncio.timeout(remaining):
                await event.wait()
        except TimeoutError:
            return event.is_set()
        return True


FLEET_CLOCK = FleetClock()


class FleetSink(SimAudioSink):
    """A SimAudioSink that shares decoded audio and fingerprints across the fleet.

    Every station's media cache has verified its file against the signed SHA-256, so
    files with the same name hold the same bytes: decoding them once instead of once per
    station keeps 1,000 ffmpeg runs (and 1,000 copies of the PCM) off one machine's CPU
    and RAM. Timing, volume and the playback record stay per station.
    """

    stream_keep_s = 0.0  # thousands of stations: keep no streamed samples (docs/live.md)

    _decoded: ClassVar[dict[tuple[str, ...], PreparedAudio]] = {}
    _fingerprints_shared: ClassVar[dict[tuple[str, ...], str]] = {}
    _locks: ClassVar[dict[tuple[str, ...], asyncio.Lock]] = {}
    _pending_start: asyncio.Future[float | None] | None = None

    async def prepare(self, files: Sequence[Path]) -> PreparedAudio:
        key = tuple(Path(f).name for f in files)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._decoded:
                prepared = await super().prepare(files)
                self._decoded[key] = prepared
                self._fingerprints_shared[key] = await super()._fingerprint(prepared)
        return self._decoded[key]

    async def _fingerprint(self, prepared: PreparedAudio) -> str:
        key = tuple(p.name for p in prepared.files)
        cached = self._fingerprints_shared.get(key)
        return cached if cached is not None else await super()._fingerprint(prepared)

    async def _wait_for_start(self, start_at: float, stop_event: asyncio.Event) -> float | None:
        """The first sample sounds on the station's own timer, stamped in the timer callback.

        A real station's DAC starts on its own clock; thousands of simulated stations share
        one event loop, and stamping when each station's coroutine next got the CPU measured
        the queue of the other stations' wake-ups (and of whatever a benchmark's waiters do
        at that moment), not the station. The stamp still comes from this loop's timer, in
        turn with every other station's: the fleet's skew is compared with N bare timers
        (`bench sync`). A station that armed its output late still starts late.
        """
        if stop_event.is_set():
            return None
        loop = asyncio.get_running_loop()
        started: asyncio.Future[float | None] = loop.create_future()
        # stop() resolves this future itself: no helper task waiting on stop_event and no
        # asyncio.wait per station (thousands of stations arm in the same second).
        self._pending_start = started

        def begin() -> None:
            if not started.done():
                started.set_result(self.clock.time())

        timer = loop.call_later(max(0.0, start_at - self.clock.time()), begin)
        try:
            return await started
        finally:
            timer.cancel()
            self._pending_start = None

    async def stop(self) -> None:
        pending = self._pending_start
        if pending is not None and not pending.done():
            pending.set_result(None)
        await super().stop()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its slot back when it is closed (read to the end or not)."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner, self._release = inner, release
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._released:
                self._released = True
                self._release()


class BoundedTransport(httpx.AsyncBaseTransport):
    """At most `slots` requests in the connection pool at once, the rest wait outside it.

    httpcore's pool scans every queued request on every change (O(queued x connections)):
    10,000 stations fetching a bulletin through one shared client kept this process busy for
    minutes in that scan. Waiting on a semaphore instead costs nothing per queued request.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, slots: int) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(slots)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._slots.acquire()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                              stream=_ReleasingStream(response.stream, self._slots.release))

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class FleetStation:
    device_id: int
    config: AgentConfig
    agent: StationHost[SpeakerRole]
    sink: SimAudioSink
    cabinet: AmplifierCabinet

    @property
    def uid(self) -> str:
        return self.config.uid


CREDENTIAL_BATCH = 1000
HTTP_SLOTS = 50  # concurrent media downloads and clock probes of one fleet process
FLEET_KEEPALIVE_S = 120
# A fleet station switches its amplifier on (and arms its output) this far ahead instead of
# 1.5 s: arming costs ~0.3 ms of CPU per station, and 5,000 stations on one shared core
# took longer than 1.5 s for it, so a third of them armed after the instant. A Pi does it in
# about a millisecond on its own CPU (docs/scaling.md, start skew). Longer is not better: an
# emergency only a little further ahead is then armed while its PLAYs still arrive (slower acks).
FLEET_RELAY_LEAD_S = 5.0
FLEET_GC_THRESHOLDS = (100_000, 50, 100)  # gc.set_threshold for a fleet process (Fleet.start)


async def provision_fleet(
    base_url: str, token: str, count: int, data_dir: Path, *, concurrency: int = 8,
    name_prefix: str = "Cụm loa mô phỏng", mqtt_host: str | None = None, mqtt_port: int | None = None,
) -> list[tuple[int, AgentConfig]]:
    """Make sure `count` speaker stations exist and issue each fresh credentials (REST API)."""
    headers = {"Authorization": f"Bearer {token}"}
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as http:

        async def call(method: str, path: str, **kw: Any) -> Any:
            async with limit:
                r = await http.request(method, path, **kw)
            r.raise_for_status()
            return r.json()

        communes = [a for a in await call("GET", "/api/v1/areas") if a["level"] == "commune"]
        if not communes:
            raise RuntimeError("the controller has no communes yet")
        devices = [d for d in await call("GET", "/api/v1/devices") if d["kind"] == "speaker"]
        created = await asyncio.gather(*(call("POST", "/api/v1/devices", json={
            "name": f"{name_prefix} {i + 1:05d} – {communes[i % len(communes)]['name']}",
            "kind": "speaker", "commune_id": communes[i % len(communes)]["id"],
        }) for i in range(len(devices), count)))  # fmt: skip
        devices = (devices + list(created))[:count]
        # In batches: one broker update per batch, not one per station (docs/scaling.md).
        issued = [cred for i in range(0, len(devices), CREDENTIAL_BATCH) for cred in (await call(
            "POST", "/api/v1/device-credentials",
            json={"device_ids": [d["id"] for d in devices[i:i + CREDENTIAL_BATCH]]}))["issued"]]
    out = []
    for device, cred in zip(devices, issued, strict=True):
        raw = dict(cred["agent_config"])
        if mqtt_host:
            raw["mqtt_host"] = mqtt_host
        if mqtt_port:
            raw["mqtt_port"] = mqtt_port
        cfg = AgentConfig(**raw, data_dir=data_dir / raw["uid"])
        cfg.save(cfg.data_dir / "config.json")
        out.append((int(device["id"]), cfg))
    return out


class Fleet:
    """Runs many agents in this event loop; start them in waves to spare the broker."""

    def __init__(
        self, stations: list[tuple[int, AgentConfig]], *, wave: int = 200, quiet: bool = True
    ) -> None:
        self._configs = stations
        # One HTTP client (one TLS context, pooled connections) for every station's media
        # downloads: a context costs ~20 ms of CPU and ~1 MB, once per station otherwise.
        self._media_http: httpx.AsyncClient | None = None
        if quiet:  # thousands of agents logging every play would cost more than playing
            for name in ("device_agents", "firmware_sim"):
                logging.getLogger(name).setLevel(logging.WARNING)
        self._wave = wave
        self.stations: list[FleetStation] = []
        self._gc_thresholds: tuple[int, int, int] | None = None

    def _make(self, device_id: int, cfg: AgentConfig) -> FleetStation:
        # Thousands of stations share this one CPU: a burst of work (10,000 media downloads)
        # can hold a station's keepalive ping back past the broker's 1.5 x keepalive, and then
        # the broker drops every one of them at once. A real station has its own CPU.
        cfg = cfg.model_copy(update={
            "mqtt_keepalive_s": max(cfg.mqtt_keepalive_s, FLEET_KEEPALIVE_S),
            "relay_lead_s": max(cfg.relay_lead_s, FLEET_RELAY_LEAD_S)})  # fmt: skip
        sink = FleetSink(clock=FLEET_CLOCK)  # no journal file: the fleet keeps playbacks in memory
        cabinet = AmplifierCabinet()
        cabinet.audio_state = lambda: (sink.playing, sink.volume)
        if self._media_http is None:
            self._media_http = httpx.AsyncClient(
                timeout=60, transport=BoundedTransport(httpx.AsyncHTTPTransport(), HTTP_SLOTS))
        # The store in memory: one file descriptor per station (its socket) instead of four
        # (SQLite file, -wal, -shm), and no disk write on the event loop that thousands of
        # stations share. A fleet station's store therefore dies with the process; a real Pi
        # keeps its store on disk in WAL mode (docs/scaling.md).
        store = AgentStore(None)
        agent = speaker_station(cfg, sink, SimAmplifier(cabinet), clock=FLEET_CLOCK, store=store,
                                media_http=self._media_http)
        # Clock-offset probes (docs/emergency.md): the first ones spread over one probe period, so
        # a fleet that just started probes at the rate a settled fleet does (N per 10 minutes), not
        # in a burst that crowds what a benchmark measures.
        agent.role.clock_probe.first_within_s = PROBE_PERIOD_S
        # When each command reached the station's socket, next to when this shared CPU read it.
        agent.link.stamp_socket_arrival = True
        return FleetStation(device_id, cfg, agent, sink, cabinet)

    async def start(self, *, connect_timeout: float = 120.0) -> float:
        """Start every agent and wait until all are connected; returns seconds taken."""
        raise_fd_limit(4 * len(self._configs) + 256)
        began = time.monotonic()
        for i in range(0, len(self._configs), self._wave):
            wave = [self._make(d, c) for d, c in self._configs[i : i + self._wave]]
            for st in wave:
                await st.agent.start()
            self.stations += wave
            await self.wait_connected(wave, connect_timeout)
        # Thousands of stations are millions of long-lived objects; every full garbage
        # collection walks all of them (~a second at 10,000 stations), at moments no one
        # chooses — e.g. in the burst before a start instant. Frozen objects are skipped.
        gc.collect()
        gc.freeze()
        # And collect the young generations far less often: with the default thresholds a full
        # collection (over every object made since the freeze, thousands of stations' worth)
        # came every ~70,000 allocations, so its cost grew with the fleet and with time —
        # 2.1-4.7 s of one emergency's 12-16 s of CPU at 5,000 stations. A Pi's agent keeps
        # the defaults: its collections walk one station's objects.
        self._gc_thresholds = gc.get_threshold()
        gc.set_threshold(*FLEET_GC_THRESHOLDS)
        return time.monotonic() - began

    @staticmethod
    async def wait_connected(stations: list[FleetStation], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(st.agent.link.connected.wait() for st in stations))

    def connected(self) -> int:
        return sum(st.agent.link.connected.is_set() for st in self.stations)

    async def stop(self) -> None:
        for i in range(0, len(self.stations), self._wave):
            await asyncio.gather(*(_quiet_stop(st) for st in self.stations[i : i + self._wave]))
        self.stations = []
        if self._media_http is not None:
            await self._media_http.aclose()
            self._media_http = None
        if self._gc_thresholds is not None:  # the process may go on without a fleet (a test run)
            gc.set_threshold(*self._gc_thresholds)
            self._gc_thresholds = None


# A station that does not stop in this time is abandoned (and reported): one stuck station must
# never hold a benchmark's teardown, and with it its printed results, forever.
STOP_TIMEOUT_S = 10.0


async def _quiet_stop(st: FleetStation) -> None:
    for step, what in ((st.agent.stop, "agent"), (st.sink.stop, "sink")):
        task = asyncio.ensure_future(step())
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        if not done:
            task.cancel()
            log.warning("%s: %s did not stop within %.0f s; abandoned", st.uid, what, STOP_TIMEOUT_S)
        elif not task.cancelled() and task.exception() is not None:
            log.debug("%s: %s stop failed: %r", st.uid, what, task.exception())
