"""What the benchmarks measure inside a fleet, wherever the fleet runs.

Each `async def fn(fleet, ...)` here runs next to the stations: in the benchmark's own
process (`LocalFleet`) or in each worker of a multi-process fleet (`WorkerFleet`,
firmware_sim/fleet_workers.py), which returns one result per worker. Results are plain
lists and numbers (they cross a process boundary); `bench fanout` and `bench sync` merge
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from device_agents.common.link import AgentLink
from firmware_sim.audio_sink import Playback, SimAudioSink
from firmware_sim.fleet import Fleet, rss_bytes
from firmware_sim.fleet_workers import FleetProcesses, LocalFleet, WorkerFleet

Runner = LocalFleet | WorkerFleet


async def start_fleet(configs: list[Any], processes: int) -> tuple[Runner, float]:
    """The stations in this loop (processes <= 1) or over worker processes; seconds to connect."""
    if processes <= 1:
        fleet = Fleet(configs)
        return LocalFleet(fleet), await fleet.start(connect_timeout=600)
    procs = FleetProcesses(configs, processes)
    figures = await asyncio.to_thread(procs.start)
    return WorkerFleet(procs), float(figures["start_s"])


@dataclass
class ReceiptProbe:
    """Wraps each fleet agent's message handler: when a command arrived and when it was handled."""

    received: dict[str, float] = field(default_factory=dict)  # uid -> first command off the socket
    reached: dict[str, float] = field(default_factory=dict)  # uid -> its bytes reached the socket (kernel)
    waited: dict[str, float] = field(default_factory=dict)  # uid -> off the socket -> handler ran
    handled: dict[str, float] = field(default_factory=dict)
    # uid -> the handler's own CPU (thread time): what of `handled - received - waited` was work,
    # the rest the process waiting for a core it shares with the broker, the controller and more.
    handling_cpu: dict[str, float] = field(default_factory=dict)
    fetched: dict[str, float] = field(default_factory=dict)  # uid -> media verified in the cache
    prepared: dict[str, float] = field(default_factory=dict)  # uid -> audio decoded, ready to start

    def attach(self, fleet: Fleet) -> None:
        for st in fleet.stations:
            link = st.agent.link
            link.wrap_handler(lambda inner, uid=st.uid, link=link: self._wrap(uid, link, inner))
            st.agent.role.media.ensure = self._stamp(st.uid, st.agent.role.media.ensure, self.fetched)  # type: ignore
            st.sink.prepare = self._stamp(st.uid, st.sink.prepare, self.prepared)  # type: ignore

    @staticmethod
    def _stamp(uid: str, inner: Callable[..., Awaitable[Any]], into: dict[str, float]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            out = await inner(*args, **kwargs)
            into[uid] = time.time()
            return out

        return call

    def reset(self) -> None:
        self.received.clear()
        self.reached.clear()
        self.waited.clear()
        self.handled.clear()
        self.handling_cpu.clear()
        self.fetched.clear()
        self.prepared.clear()

    def _wrap(self, uid: str, link: AgentLink,
              inner: Callable[[str, bytes], Awaitable[None]]) -> Callable[[str, bytes], Awaitable[None]]:

        async def handler(topic: str, payload: bytes) -> None:
            arrived, reached, t = link.last_arrival, link.last_socket_arrival, time.time()
            cpu = time.thread_time()
            await inner(topic, payload)
            if topic.endswith("/cmd") and uid not in self.received:
                self.handling_cpu[uid] = time.thread_time() - cpu
                self.received[uid] = arrived
                if reached is not None:
                    self.reached[uid] = reached
                self.waited[uid] = t - arrived
                self.handled[uid] = time.time()

        return handler


_PROBES: dict[int, ReceiptProbe] = {}  # id(fleet) -> its probe


def plays(sha: str, volume: int | None = None, after: float = 0.0) -> Callable[[Playback], bool]:
    """A playback of the file `sha` (at `volume`, when given) requested after `after`."""
    return lambda p: (any(sha in f for f in p.files) and (volume is None or p.volume == volume)
                      and p.requested_start > after)


async def each_playback(fleet: Fleet, match: Callable[[Playback], bool], timeout: float) -> list[Playback]:
    """Every station's playback matching `match` (a sink records one when it ends or is stopped)."""

    async def one(st: Any) -> Playback | None:
        with contextlib.suppress(TimeoutError):
            return await st.sink.wait_for(match, timeout=timeout)
        return None

    return [p for p in await asyncio.gather(*(one(st) for st in fleet.stations)) if p is not None]


# -- calls (each runs next to the stations) -------------------------------------------------
async def attach_probe(fleet: Fleet) -> int:
    probe = ReceiptProbe()
    probe.attach(fleet)
    _PROBES[id(fleet)] = probe
    return len(fleet.stations)


async def reset_probe(fleet: Fleet) -> None:
    _PROBES[id(fleet)].reset()


async def hold_media(fleet: Fleet, stored: str, sha: str) -> None:
    """Put the clip in every station's cache (as the emergency kit would)."""
    for st in fleet.stations:
        shutil.copyfile(stored, st.agent.role.media.path_for(sha))


async def media_counters(fleet: Fleet) -> list[float]:
    """Over this process's stations: HTTP media downloads, bytes downloaded, files that came
    inside a signed PLAY (device_agents/common/media_cache.py; NaN where the agent does not
    count it, e.g. an agent older than audio inside the PLAY)."""
    caches = [st.agent.role.media for st in fleet.stations]

    def total(name: str) -> float:
        if not all(hasattr(c, name) for c in caches):
            return math.nan
        return float(sum(getattr(c, name) for c in caches))

    return [total("downloads"), total("bytes_downloaded"), total("stored_inline")]


async def cpu_seconds(fleet: Fleet) -> float:
    """This process's CPU time so far (the stations, and a probe's own bookkeeping)."""
    return time.process_time()


async def rss(fleet: Fleet) -> int:
    return rss_bytes()


async def emergency_results(fleet: Fleet, sha: str, after: float, timeout: float) -> dict[str, list[float]]:
    """Wait until every station played `sha` at volume 100; what the probe saw meanwhile."""
    played = await each_playback(fleet, plays(sha, volume=100, after=after), timeout)
    probe = _PROBES[id(fleet)]
    uids = list(probe.received)
    return {
        "received": [probe.received[u] for u in uids],
        "reached": [probe.reached[u] for u in uids if u in probe.reached],
        "waited": [probe.waited[u] for u in uids],
        "handling": [probe.handled[u] - probe.received[u] - probe.waited[u] for u in uids],
        "acks_sent": [probe.handled[u] for u in uids],  # the ack queued (wall clock)
        "handling_cpu": [probe.handling_cpu[u] for u in uids],
        # A station with its own CPU: its bytes reached the socket, then its own handling (no wait
        # for a shared CPU); `bench fanout` adds the audio preparation of one station alone.
        "own_handled": [probe.reached[u] + probe.handled[u] - probe.received[u] - probe.waited[u]
                        for u in uids if u in probe.reached],
        "fetched": list(probe.fetched.values()), "prepared": list(probe.prepared.values()),
        "started": [p.started_at for p in played],
    }  # fmt: skip


async def prepare_alone(fleet: Fleet, sha: str, tries: int = 3) -> float:
    """Seconds one station takes to prepare (decode and fingerprint) `sha` on its own: the fleet's
    sinks share one decode (firmware_sim/fleet.py FleetSink), a real station decodes it itself.
    Run on the idle fleet after the round; the shortest of `tries`."""
    st = fleet.stations[0]
    path = st.agent.role.media.path_for(sha)
    best = math.inf
    for _ in range(tries):
        t0 = time.perf_counter()
        await SimAudioSink.prepare(st.sink, [path])
        best = min(best, time.perf_counter() - t0)
    return best


async def first_playbacks(fleet: Fleet, timeout: float) -> dict[str, list[float]]:
    """Each station's first playback: (requested start, started at) as two lists."""
    first = await each_playback(fleet, lambda p: True, timeout)  # one that never played is left out
    return {"requested": [p.requested_start for p in first], "started": [p.started_at for p in first]}


async def bare_timers(fleet: Fleet, n: int, instant: float) -> list[float]:
    """`n` plain asyncio timers in this process for one instant: when each woke."""
    woke: list[float] = []

    async def one() -> None:
        await asyncio.sleep(instant - time.time())
        woke.append(time.time())

    await asyncio.gather(*(one() for _ in range(n)))
    return woke


def merged(parts: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """One dict of lists from the workers' dicts of lists."""
    out: dict[str, list[float]] = {}
    for part in parts:
        for key, values in part.items():
            out.setdefault(key, []).extend(values)
    return out
