"""Fleet mode: N simulated speaker stations in one process.

Each station is a real `SpeakerAgent` with its own MQTT connection, its own broker
account (issued through the controller's REST API, as `communecast sim stations` does),
its own SQLite store and media cache; only the hardware is simulated in-process
(`SimAudioSink` + `SimAmplifier` over the cabinet model, no pty per station).

Per-station costs (measured by `communecast sim fleet`, docs/scaling.md): one TCP socket,
one SQLite file (in-memory journal here: WAL would hold two more file descriptors
per station), two asyncio tasks (link, telemetry) and one paho client.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from device_agents.common.clock import Clock
from device_agents.common.config import AgentConfig
from device_agents.common.store import AgentStore
from device_agents.hardware.audio import PreparedAudio
from device_agents.hardware.sim_amplifier import SimAmplifier
from device_agents.speaker.agent import SpeakerAgent
from firmware_sim.audio_sink import SimAudioSink
from firmware_sim.relay_board import AmplifierCabinet

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


@dataclass
class FleetStation:
    device_id: int
    config: AgentConfig
    agent: SpeakerAgent
    sink: SimAudioSink
    cabinet: AmplifierCabinet

    @property
    def uid(self) -> str:
        return self.config.uid


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
        issued = await asyncio.gather(
            *(call("POST", f"/api/v1/devices/{d['id']}/credentials") for d in devices))
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

    def _make(self, device_id: int, cfg: AgentConfig) -> FleetStation:
        sink = FleetSink(clock=FLEET_CLOCK)  # no journal file: the fleet keeps playbacks in memory
        cabinet = AmplifierCabinet()
        cabinet.audio_state = lambda: (sink.playing, sink.volume)
        if self._media_http is None:
            self._media_http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50))
        # One file descriptor per station instead of three (WAL keeps -wal and -shm open),
        # and no fsync on the event loop: thousands of stations share one CPU here. A fleet
        # station's store is therefore not crash-safe; a real Pi keeps WAL (docs/scaling.md).
        store = AgentStore(cfg.data_dir / "agent.sqlite3", durable=False)
        agent = SpeakerAgent(cfg, sink, SimAmplifier(cabinet), clock=FLEET_CLOCK, store=store,
                             media_http=self._media_http)
        # Clock-offset probes (docs/emergency.md): spread over minutes, so a fleet's probes (its own
        # HTTP traffic in this one process) do not crowd what is being measured.
        agent.clock_probe.first_within_s = max(120.0, len(self._configs) / 20)
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
