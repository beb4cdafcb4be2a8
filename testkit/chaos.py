"""A chaos week with a ledger (issue 18): real schedules and emergencies on N stations under an
accelerated clock while a seeded schedule of faults runs, then every planned occurrence at
every station reconciled against what the speakers sounded and what the controller was told.

Used by `communecast bench chaos` (benchmarks/chaos.py) and tests/system/test_chaos.py.

What is real: the controller (a subprocess of `testkit.harness.System`, killed with SIGKILL
and started again), Mosquitto (SIGKILL + start, SIGSTOP/SIGCONT), the stations' agents
(`speaker_station`: link, gate, store, outbox, role), their SQLite stores across a power cut.
What is simulated: the speakers (`LedgerSink`, a `SimAudioSink` that notes every sound the
moment it begins), the passage of time (one `AcceleratedClock`, each station reading it
through its own `StationClock` so its clock can be stepped), a station's network (each one's
MQTT goes through its own `CuttableProxy`; media over HTTP is not cut), a full disk (the
station's media cache fails its downloads with ENOSPC). Every `serial_every`-th station drives
its amplifier cabinet through the real Modbus RTU driver on a pty to the cabinet simulator, and
`serial_garble` puts noise on that line (testkit/chaos_serial.py); `led_boards` LED boards run
the real LED agent against byte-level board simulators on ptys (testkit/chaos_led.py).

Time: SPEED virtual seconds per real second (default one virtual hour per real second). The
agents' real-time tolerances are scaled as in tests/system/test_week_simulated.py: late-start
tolerance and decode-ahead are TOLERANCE_S virtual (2 virtual hours = 2 s real), and the
items of a station are at least 1.5 virtual hours apart, so a late start does not run into
the next item on the horn.

The day, local time (Asia/Ho_Chi_Minh), on every simulated day:
  06:00, 18:00   morning/evening bulletin, all stations          (schedule, normal)
  12:00          vaccination notice, commune A (even stations)    (schedule, normal)
  03, 09, 15, 21 flood warning, stations tagged ven-song (i % 5 == 0) (schedule, priority)
  xx:30 + 1 h    emergencies (emergencies_per_day, at seeded slots k*3h + 00:30, playing
                 at k*3h + 01:30), to every station, each with its own clip that the stations
                 have not fetched before (so a full disk or a killed controller shows).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import random
import re
import signal
import struct
import time
import wave
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from communecast.stations import ApiClient, provision, provision_led
from device_agents.common.clock import AcceleratedClock, Clock
from device_agents.common.config import AgentConfig
from device_agents.hardware.amplifier import Amplifier, ModbusAmplifier, ModbusBusConfig, NoAmplifier
from device_agents.hardware.audio import PlaybackResult, PreparedAudio
from device_agents.host.host import StationHost
from device_agents.speaker import role as speaker_role
from device_agents.speaker.role import SpeakerRole, speaker_station
from firmware_sim.audio_sink import SimAudioSink
from protocol.messages import MediaRef
from testkit.chaos_led import LED_PROTOCOLS, ChaosBoard, LedLedger, LedPlan, led_ledger
from testkit.chaos_serial import (
    MODBUS_RETRIES,
    MODBUS_TIMEOUT_S,
    Cabinet,
    RecordingAmplifier,
    SerialLedger,
    probe,
    serial_config,
    serial_ledger,
)
from testkit.harness import System
from testkit.proxy import CuttableProxy
from testkit.waiting import eventually

log = logging.getLogger(__name__)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
HOUR = 3600.0
SPEED = HOUR  # virtual seconds per real second
TOLERANCE_S = 2 * HOUR  # late-start tolerance and decode-ahead, virtual
EMERGENCY_LEAD_S = HOUR  # an emergency is sent 1 virtual hour before it plays
MATCH_SLACK_S = 600.0  # a sound may start this much before its instant (a clock stepped 5 min ahead)
REPORTED = ("missed", "failed", "interrupted")


# -- the simulated speaker ---------------------------------------------------------------------------
@dataclass
class Sound:
    """One sound as the speaker made it: which clip, aimed at when, began when."""

    device_id: int
    sha256: str
    requested_start: float  # the instant the agent asked for (its own clock)
    started_at: float  # when the first sample went out (station clock)
    true_started_at: float  # the same on the run's clock (a stepped station clock differs)
    completed: bool | None = None  # None: the station lost power while it sounded
    amp_on: bool | None = None  # the cabinet's amplifier relay as the sound began (None: no cabinet)


class LedgerSink(SimAudioSink):
    """The speaker of one station, for the ledger: notes each sound the moment it begins.

    A playback the agent loses mid-way (a power cut cancels it) is never appended to
    `playbacks`, but it sounded: `sounds` keeps it, with completed=None. One sink is kept per
    station across power cuts (it is the hardware). Decoding is done once per distinct clip for
    the whole fleet (as DecodeOnceSink does per station in the week test): 50 ffmpeg runs per
    emergency would measure the machine, not the product.
    """

    _decoded: ClassVar[dict[tuple[str, ...], PreparedAudio]] = {}
    _decoding: ClassVar[dict[tuple[str, ...], asyncio.Lock]] = {}

    def __init__(self, device_id: int, clock: Clock, true_clock: Clock) -> None:
        super().__init__(clock=clock)
        self.device_id = device_id
        self.true_clock = true_clock
        self.sounds: list[Sound] = []
        self._current: Sound | None = None
        self.amp_on: Callable[[], bool] | None = None  # the cabinet's relay, on a station that has one

    async def prepare(self, files: Sequence[Path]) -> PreparedAudio:
        key = tuple(Path(f).name for f in files)
        async with self._decoding.setdefault(key, asyncio.Lock()):  # 50 stations at once: one ffmpeg
            cached = self._decoded.get(key)
            if cached is None:
                cached = self._decoded[key] = await super().prepare(files)
        return PreparedAudio(pcm=cached.pcm, rate=cached.rate, files=tuple(Path(f) for f in files))

    async def _wait_for_start(self, start_at: float, stop_event: asyncio.Event) -> float | None:
        began = await super()._wait_for_start(start_at, stop_event)
        if began is not None:
            self._current = Sound(self.device_id, self._sha, start_at, began, self.true_clock.time(),
                                  amp_on=self.amp_on() if self.amp_on is not None else None)
            self.sounds.append(self._current)
        return began

    async def _play(
        self, prepared: PreparedAudio, start_at: float, volume: int, stop_event: asyncio.Event
    ) -> PlaybackResult:
        # Here, not in play(): play() refuses a second call while one is on, after which this
        # would already have named the wrong clip.
        self._current = None
        self._sha = Path(prepared.files[0]).name.split(".")[0] if prepared.files else "?"
        result = await super()._play(prepared, start_at, volume, stop_event)
        if self._current is not None:
            self._current.completed = result.completed
        return result


class StationClock(Clock):
    """A station's wall clock: the run's accelerated clock plus an offset a fault can step.

    Sleeps re-read the clock when they wake, like Clock.sleep_until on a Pi after an NTP step:
    a step forward makes a sleeper wake late (by the step), a step back makes it sleep on."""

    def __init__(self, base: AcceleratedClock) -> None:
        self.base = base
        self.speed = base.speed
        self.offset = 0.0

    def time(self) -> float:
        return self.base.time() + self.offset

    def step(self, seconds: float) -> None:
        self.offset += seconds

    async def sleep_until(self, unix_ts: float) -> None:
        while (remaining := unix_ts - self.time()) > 0:  # noqa: ASYNC110 - a clock, re-read on waking
            await asyncio.sleep(max(remaining / self.speed, 0.0005) if self.base.running else 0.05)


# -- the stations ------------------------------------------------------------------------------------
@dataclass
class ChaosStation:
    index: int
    device_id: int
    config: AgentConfig
    proxy: CuttableProxy
    clock: StationClock
    sink: LedgerSink
    host: StationHost[SpeakerRole] | None = None
    disk_full: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    power_cuts: int = 0
    cabinet: Cabinet | None = None  # a relay board on a real serial line (else no amplifier)

    async def add_cabinet(self, true_clock: AcceleratedClock) -> None:
        """The station's amplifier cabinet on a pty, for every life of its agent (it is hardware)."""
        self.cabinet = cab = Cabinet(lambda: (self.sink.playing, self.sink.volume), true_clock)
        await cab.start()
        self.sink.amp_on = lambda: cab.cabinet.relay_on
        self.config = self.config.model_copy(update={"modbus_url": cab.url,
                                                     **serial_config(true_clock.speed)})

    def build(self) -> StationHost[SpeakerRole]:
        amp: Amplifier = NoAmplifier()
        if self.cabinet is not None:  # the agent's own Modbus RTU driver, as on a Pi
            bus = ModbusBusConfig(url=self.cabinet.url, timeout_s=MODBUS_TIMEOUT_S, retries=MODBUS_RETRIES)
            amp = RecordingAmplifier(ModbusAmplifier(bus), self.cabinet, self.clock)
        self.host = speaker_station(self.config, self.sink, amp, clock=self.clock)
        self._apply_disk()
        return self.host

    @property
    def modbus(self) -> ModbusAmplifier | None:
        """The running agent's Modbus driver (None: no cabinet, or the agent is down)."""
        amp = self.host.role.amp if self.host is not None else None
        return amp.inner if isinstance(amp, RecordingAmplifier) else None

    def _apply_disk(self) -> None:
        """A full disk: the media cache cannot write a download (ENOSPC); what it holds stays."""
        assert self.host is not None
        cache = self.host.role.media
        original = type(cache)._download.__get__(cache)

        async def download(ref: MediaRef) -> Path:
            if self.disk_full:
                raise OSError(errno.ENOSPC, "No space left on device (chaos: full disk)")
            return await original(ref)

        cache._download = download  # type: ignore[method-assign]

    async def start(self) -> None:
        await self.build().start()

    async def stop(self) -> None:
        if self.host is not None:
            with contextlib.suppress(Exception):
                await self.host.stop()
            self.host = None

    def relay_held(self) -> bool:
        """The agent's relay is in use while nothing sounds and nobody switched it for a virtual
        hour: a user that never let go (an item holds it from its relay lead to its end)."""
        if self.host is None or self.cabinet is None or not self.host.role.relay.busy or self.sink.playing:
            return False
        last = max((w.at for w in self.cabinet.switches), default=0.0)
        return self.clock.time() - last > HOUR


class LoopLag:
    """How late this process's event loop wakes (real seconds): every agent runs on it, so a stall
    of d s real is d x speed virtual seconds late for every station at once. Reported beside the
    ledger, so a run on a starved machine is told apart from a product fault."""

    def __init__(self, clock: AcceleratedClock, period_s: float = 0.05) -> None:
        self.clock, self.period_s = clock, period_s
        self.stalls: list[tuple[float, float]] = []  # (virtual instant, real seconds late), > 0.25 s
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.period_s)
            late = loop.time() - t0 - self.period_s
            self.worst = max(self.worst, late)
            if late > 0.25:
                self.stalls.append((self.clock.time(), late))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class World:
    system: System
    clock: AcceleratedClock
    stations: list[ChaosStation]
    infra: asyncio.Lock = field(default_factory=asyncio.Lock)

    def vtime(self) -> float:
        return self.clock.time()


# -- the faults ---------------------------------------------------------------------------------------
@dataclass
class Fault:
    """One fault: begins at virtual instant `at`, lasts `duration` virtual seconds, on `target`
    (a station index, or None for the broker / the controller)."""

    kind: ClassVar[str] = "fault"
    infra: ClassVar[bool] = False
    at: float
    duration: float
    target: int | None = None
    value: float | None = None
    began: float | None = None  # virtual instants it really began and ended
    ended: float | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    async def begin(self, world: World) -> None:
        raise NotImplementedError

    async def end(self, world: World) -> None:
        return None

    async def run(self, world: World) -> None:
        await world.clock.sleep_until(self.at)
        lock = world.infra if self.infra else world.stations[self.target or 0].lock
        async with lock:
            self.began = world.vtime()
            await self.begin(world)
            await world.clock.sleep_until(self.began + self.duration)
            await self.end(world)
            self.ended = world.vtime()

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": _iso(self.at), "target": self._target_name(),
                "duration_virtual_s": round(self.duration), "value": self.value,
                "began": _iso(self.began) if self.began else None,
                "ended": _iso(self.ended) if self.ended else None, "note": self.note,
                **({"detail": self.detail} if self.detail else {})}

    def _target_name(self) -> str:
        return f"station {self.target}" if self.target is not None else self.kind.split("_")[0]


class BrokerRestart(Fault):
    """kill -9 of Mosquitto, started again on the same port after `duration`."""

    kind = "broker_restart"
    infra = True

    async def begin(self, world: World) -> None:
        world.system.broker.kill()

    async def end(self, world: World) -> None:
        await asyncio.to_thread(world.system.broker.start)


class BrokerFreeze(Fault):
    """SIGSTOP: the broker keeps every socket open and answers nothing; SIGCONT after `duration`."""

    kind = "broker_freeze"
    infra = True

    async def begin(self, world: World) -> None:
        world.system.broker.freeze()

    async def end(self, world: World) -> None:
        world.system.broker.thaw()


class ControllerKill(Fault):
    """kill -9 of the controller process; started again after `duration`, waited healthy."""

    kind = "controller_kill"
    infra = True

    async def begin(self, world: World) -> None:
        world.system.controller.stop(signal.SIGKILL)

    async def end(self, world: World) -> None:
        world.system.controller.start()
        t0 = time.monotonic()
        await world.system.controller.wait_healthy()
        self.note = f"healthy {time.monotonic() - t0:.1f} s real after start"


class Partition(Fault):
    """The station's TCP link to the broker is dropped and refused for `duration`."""

    kind = "partition"

    async def begin(self, world: World) -> None:
        world.stations[self.target or 0].proxy.cut()

    async def end(self, world: World) -> None:
        world.stations[self.target or 0].proxy.restore()


class PowerCut(Fault):
    """The station dies where it is (mid-play, mid-download, mid-publish): its TCP connection is
    dropped without a DISCONNECT (its Last Will fires), its tasks are cancelled; after `duration`
    a new agent starts on the same data dir (the same SQLite store, media cache and config)."""

    kind = "power_cut"

    async def begin(self, world: World) -> None:
        st = world.stations[self.target or 0]
        st.proxy.cut()
        playing = st.sink.playing
        await st.stop()
        st.proxy.restore()
        st.power_cuts += 1
        self.note = "mid-play" if playing else ""

    async def end(self, world: World) -> None:
        await world.stations[self.target or 0].start()


class ClockStep(Fault):
    """The station's wall clock jumps by `value` seconds (±5 min), as a bad NTP answer would."""

    kind = "clock_step"

    async def begin(self, world: World) -> None:
        world.stations[self.target or 0].clock.step(self.value or 0.0)


class DiskFull(Fault):
    """The station's disk is full for `duration`: downloads into the media cache fail (ENOSPC)."""

    kind = "disk_full"

    async def begin(self, world: World) -> None:
        world.stations[self.target or 0].disk_full = True

    async def end(self, world: World) -> None:
        world.stations[self.target or 0].disk_full = False


class SerialGarble(Fault):
    """Noise on the station's RS-485 line for `duration`: in bursts, the requests to its cabinet or
    the cabinet's replies arrive with flipped bits (firmware_sim's own `garble_requests` and
    `garble` line faults), then the line is clean again and the agent's own Modbus driver must
    answer a read (it did not hang). Only stations with a cabinet (testkit/chaos_serial.py)."""

    kind = "serial_garble"

    async def begin(self, world: World) -> None:
        st = world.stations[self.target or 0]
        assert st.cabinet is not None, "serial_garble on a station without a cabinet"
        self.detail = {"device_id": st.device_id, "station": st.index, "began": world.vtime(),
                       "before": st.cabinet.counters()}
        self._noise = asyncio.create_task(st.cabinet.noise(random.Random(self.value)))  # noqa: S311

    async def end(self, world: World) -> None:
        st = world.stations[self.target or 0]
        assert st.cabinet is not None
        self._noise.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._noise
        self.detail["ended"] = world.vtime()
        amp = st.modbus
        answered = await probe(amp) if amp is not None else None
        self.detail |= {"after": st.cabinet.counters(), "probe_s": answered}
        c = {k: self.detail["after"][k] - self.detail["before"][k] for k in self.detail["after"]}
        self.note = (f"garbled {c['garbled_requests']} requests (rejected {c['rejected_frames']}), "
                     f"{c['garbled_replies']} replies; {c['relay_errors']} relay errors; driver answered "
                     + ("never" if answered is None else f"{answered * 1000:.0f} ms real") + " after")


FAULT_KINDS: dict[str, type[Fault]] = {f.kind: f for f in (
    BrokerRestart, BrokerFreeze, ControllerKill, Partition, PowerCut, ClockStep, DiskFull, SerialGarble)}
# (weight, shortest, longest duration in virtual seconds)
FAULT_MIX: dict[str, tuple[int, float, float]] = {
    "broker_restart": (2, 0.1 * HOUR, 0.5 * HOUR),
    "broker_freeze": (2, 0.5 * HOUR, 2 * HOUR),
    "controller_kill": (2, 0.1 * HOUR, 1 * HOUR),
    "partition": (4, 0.5 * HOUR, 8 * HOUR),
    "power_cut": (4, 0.1 * HOUR, 4 * HOUR),
    "clock_step": (2, 0.0, 0.0),
    "disk_full": (2, 1 * HOUR, 6 * HOUR),
    # at least 3 h: every item of a station with a cabinet (3 h apart) switches its relay in the noise
    "serial_garble": (2, 3 * HOUR, 6 * HOUR),
}
# After a broker or controller fault ends, the next one comes at least this much later (virtual):
# the controller takes 1-2 s real to start (1-2 virtual hours at the default speed), and a
# system that is never given the time to recover only measures the restarts.
INFRA_GAP_S = 3 * HOUR
STATION_GAP_S = 0.5 * HOUR  # the same between two faults on one station


def plan_faults(rng: random.Random, count: int, v0: float, v_end: float, stations: int,
                kinds: Sequence[str] = tuple(FAULT_MIX), serial_stations: Sequence[int] = ()) -> list[Fault]:
    """`count` faults from the seeded `rng`: at least one of each kind, then by weight.
    `serial_garble` goes to one of `serial_stations` (those with a cabinet on a serial line).

    Faults never overlap on one target: a broker or controller fault is placed after the
    previous one has ended (plus INFRA_GAP_S; when the day is full it becomes a station
    fault), a station fault goes to a station that is free all along its span. The
    injection window is [v0 + 30 min, v_end - 3 h] so the last proofs can come in."""
    names = list(kinds)[:count]
    weights = [FAULT_MIX[k][0] for k in kinds]
    names += rng.choices(list(kinds), weights=weights, k=count - len(names))
    station_kinds = [k for k in kinds if not FAULT_KINDS[k].infra] or ["partition"]
    lo_at, hi_at = v0 + 0.5 * HOUR, v_end - 3 * HOUR
    draws = sorted(((rng.uniform(lo_at, hi_at), name) for name in names), key=lambda d: d[0])
    faults: list[Fault] = []
    infra_free_at = lo_at
    busy: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for at, name in draws:
        if FAULT_KINDS[name].infra:
            at = max(at, infra_free_at)
            if at > hi_at:  # no room left for it today: a fault on a station instead
                name, at = rng.choice(station_kinds), rng.uniform(lo_at, hi_at)
        _, lo, hi = FAULT_MIX[name]
        duration = max(0.0, min(rng.uniform(lo, hi), v_end - 2 * HOUR - at))
        cls = FAULT_KINDS[name]
        target = None
        if cls.infra:
            infra_free_at = at + duration + INFRA_GAP_S
        else:
            span = (at - STATION_GAP_S, at + duration + STATION_GAP_S)
            pool = serial_stations if name == "serial_garble" else range(stations)
            free = [i for i in pool if all(e < span[0] or s > span[1] for s, e in busy[i])]
            if not free:
                continue
            target = rng.choice(free)
            busy[target].append((at, at + duration))
        value = rng.choice((-300.0, 300.0)) if name == "clock_step" else None
        if name == "serial_garble":
            value = float(rng.randrange(1 << 30))  # seeds the noise's bursts
        faults.append(cls(at=at, duration=duration, target=target, value=value))
    return faults


# -- the plan -----------------------------------------------------------------------------------------
@dataclass
class Occurrence:
    device_id: int
    item_id: str
    sha256: str
    start: float  # virtual unix instant
    what: str  # "schedule <title>" | "emergency"


@dataclass
class ChaosSettings:
    stations: int = 50
    days: float = 1.0
    seed: int = 1
    faults: int | None = None  # default: 24 per day
    emergencies_per_day: int = 2
    speed: float = SPEED
    settle_s: float = 60.0  # real seconds to wait for the last proofs of play
    kinds: tuple[str, ...] = tuple(FAULT_MIX)
    serial_every: int = 10  # every n-th station has its cabinet on a real serial line (0: none)
    led_boards: int = 3

    @property
    def fault_count(self) -> int:
        return self.faults if self.faults is not None else max(len(self.kinds), round(24 * self.days))


def _tone(path: Path, freq: float, seconds: float = 1.0) -> Path:
    """A 16-bit mono sine as a WAV file (the controller transcodes it like any upload)."""

    rate = 16000
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * n / rate)))
                      for n in range(int(rate * seconds)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


async def _upload_tone(system: System, root: Path, name: str, freq: float) -> dict[str, Any]:
    path = _tone(root / f"{name}.wav", freq)
    with path.open("rb") as fh:
        r = await system.api("POST", "/api/v1/media", files={"file": (path.name, fh)})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, TZ).isoformat(timespec="seconds")


def _instant(item_id: str) -> float:
    return datetime.strptime(item_id.split("@")[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


# -- the ledger ---------------------------------------------------------------------------------------
BREAKING = ("duplicate", "unsigned", "lost_proof", "silent_gap", "misreported", "phantom_proof")


@dataclass
class Ledger:
    """Every planned (occurrence, station) with its outcome, and what breaks the promise."""

    planned: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # played, interrupted, missed, failed, ...
    reasons: Counter[str] = field(default_factory=Counter)  # "missed: start passed ..." -> count
    breaking: list[dict[str, Any]] = field(default_factory=list)
    items: dict[tuple[int, str], str] = field(default_factory=dict)  # (device, item) -> its outcome
    serial: SerialLedger = field(default_factory=SerialLedger)  # the stations with a serial line
    led: LedLedger = field(default_factory=LedLedger)  # the LED boards

    def count(self, kind: str) -> int:
        return sum(1 for b in self.breaking if b["kind"] == kind)

    @property
    def totals(self) -> dict[str, int]:
        return {"planned": self.planned, **{k: self.outcomes[k] for k in sorted(self.outcomes)},
                **{k: self.count(k) for k in BREAKING}}

    @property
    def ok(self) -> bool:
        return not self.breaking and self.serial.ok and self.led.ok


def reconcile(
    occurrences: Sequence[Occurrence], sounds: Sequence[Sound], play_rows: Sequence[dict[str, Any]],
    station_states: dict[tuple[int, str], dict[str, Any]], v_end: float,
    station_items: dict[tuple[int, str], tuple[str, str | None]] | None = None,
) -> Ledger:
    """What every planned occurrence came to at every station.

    - a sound belongs to the occurrence of its station with the same clip whose instant is
      nearest to the instant the agent aimed at (within [-MATCH_SLACK_S, TOLERANCE_S +
      MATCH_SLACK_S]); a sound that belongs to none is `unsigned` (no signed command asked
      for it: every planned occurrence reached the stations only in the controller's signed
      envelopes);
    - sounded once: `played` (or `interrupted`, as the controller's proof says); no proof at
      the controller, or proof stuck at `playing`: `lost_proof`; proof saying missed/failed:
      `misreported`;
    - sounded twice or more: `duplicate`;
    - never sounded: reported `missed` / `failed` / `interrupted` with a reason in the play
      log, or (emergencies) a station state the controller gave a reason for (`rejected`,
      `offline`, ...); proof of a play that never sounded: `phantom_proof`; nothing at all:
      `silent_gap`.
    """
    ledger = Ledger(planned=len(occurrences))
    by_key: dict[tuple[int, str], list[Occurrence]] = defaultdict(list)
    for occ in occurrences:
        by_key[(occ.device_id, occ.sha256)].append(occ)
    heard: dict[tuple[int, str], list[Sound]] = defaultdict(list)
    for snd in sounds:
        if snd.requested_start >= v_end:
            continue  # the horizon reaches past the run: not part of the ledger
        cands = [o for o in by_key.get((snd.device_id, snd.sha256), [])
                 if o.start - MATCH_SLACK_S <= snd.requested_start <= o.start + TOLERANCE_S + MATCH_SLACK_S]
        if not cands:
            ledger.breaking.append({"kind": "unsigned", "device_id": snd.device_id, "sha256": snd.sha256[:12],
                                    "at": _iso(snd.true_started_at)})
            continue
        occ = min(cands, key=lambda o: abs(snd.requested_start - o.start))
        heard[(occ.device_id, occ.item_id)].append(snd)
    proof = {(r["device_id"], r["item_id"]): r for r in play_rows}
    for occ in occurrences:
        key = (occ.device_id, occ.item_id)
        got, row = heard.get(key, []), proof.get(key)
        where = {"device_id": occ.device_id, "item_id": occ.item_id, "what": occ.what, "at": _iso(occ.start),
                 # the station's own record (state, outcome) at the end: evidence for a post-mortem
                 "station": (station_items or {}).get((occ.device_id, occ.item_id))}
        if len(got) > 1:
            heard_at = [_iso(s.true_started_at) for s in got]
            ledger.breaking.append({"kind": "duplicate", **where, "sounded": heard_at})
        elif got:
            status = row["status"] if row else None
            if status in ("played", "interrupted"):
                ledger.outcomes[status] += 1
                if status == "interrupted":
                    ledger.reasons[f"interrupted: {row.get('reason')}"] += 1  # type: ignore[union-attr]
                ledger.items[key] = status
            elif status in ("missed", "failed"):
                ledger.breaking.append({"kind": "misreported", **where, "status": status,
                                        "reason": row.get("reason")})  # type: ignore[union-attr]
            else:
                ledger.breaking.append({"kind": "lost_proof", **where, "proof": status})
        elif row is not None and row["status"] in REPORTED and row.get("reason"):
            ledger.outcomes[row["status"]] += 1
            ledger.reasons[f"{row['status']}: {_short(row['reason'])}"] += 1
            ledger.items[key] = f"{row['status']}: {_short(row['reason'])}"
        elif row is not None and row["status"] in ("played", "playing"):
            ledger.breaking.append({"kind": "phantom_proof", **where, "proof": row["status"]})
        elif (state := station_states.get(key)) is not None and state.get("reason") and (
                state["state"] not in ("pending", "acked", "played", "playing")):
            ledger.outcomes[state["state"]] += 1
            ledger.reasons[f"{state['state']}: {_short(state['reason'])}"] += 1
            ledger.items[key] = f"{state['state']}: {_short(state['reason'])}"
        else:
            ledger.breaking.append({"kind": "silent_gap", **where,
                                    "proof": row["status"] if row else None,
                                    "controller_state": state["state"] if state else None})
        if key not in ledger.items:
            ledger.items[key] = ledger.breaking[-1]["kind"]
    return ledger


def _short(reason: str) -> str:
    """A reason without its variable part (a media hash), so equal reasons count together."""
    return re.sub(r"[0-9a-f]{16,}", "<sha>", str(reason))[:120]


# -- the run ------------------------------------------------------------------------------------------
@dataclass
class ChaosResult:
    settings: ChaosSettings
    ledger: Ledger
    faults: list[Fault]
    emergencies: list[dict[str, Any]]
    window: tuple[float, float]
    timings: dict[str, float]
    stalls: list[tuple[str, float]] = field(default_factory=list)  # (virtual instant, real s late)

    @property
    def near_crash(self) -> int:
        crashes = ("broker_restart", "controller_kill")
        return sum(1 for b in self.ledger.breaking
                   if any(n.startswith(crashes) for n in b.get("faults_near", ())))

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.settings.seed, "settings": asdict(self.settings),
            "window": [_iso(self.window[0]), _iso(self.window[1])],
            "totals": self.ledger.totals, "ok": self.ledger.ok, "breaking_near_crash": self.near_crash,
            "reasons": dict(self.ledger.reasons.most_common()),
            "faults": [f.record() for f in self.faults],
            "fault_counts": dict(Counter(f.kind for f in self.faults)),
            "emergencies": self.emergencies, "breaking": self.ledger.breaking[:500],
            "serial": self.ledger.serial.as_json(), "serial_breaking": self.ledger.serial.breaking[:100],
            "led": self.ledger.led.as_json(), "led_breaking": self.ledger.led.breaking[:100],
            "timings_real_s": self.timings, "loop_stalls": self.stalls,
        }

    def summary(self) -> str:
        t = self.ledger.totals
        s = self.settings
        outcome = ", ".join(f"{k} {t[k]}" for k in t if k not in BREAKING and k != "planned")
        lines = [
            f"chaos: seed {s.seed}, {s.stations} stations, {s.days:g} virtual day(s) at x{s.speed:.0f} "
            f"({_iso(self.window[0])} .. {_iso(self.window[1])})",
            f"  faults injected: {len(self.faults)} ("
            + ", ".join(f"{k} {n}" for k, n in sorted(Counter(f.kind for f in self.faults).items())) + ")",
            f"  emergencies sent: {len(self.emergencies)}",
            f"  ledger: {t['planned']} planned (occurrence x station): {outcome}",
            "  breaking: " + ", ".join(f"{k} {t[k]}" for k in BREAKING),
            f"  breaking items with a broker or controller crash around their instant: {self.near_crash} of "
            f"{len(self.ledger.breaking)}",
            f"  reasons: {dict(self.ledger.reasons.most_common(8))}",
            *self.ledger.serial.summary(),
            *self.ledger.led.summary(),
            "  real time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()),
            f"  event-loop stalls over 0.25 s real: {len(self.stalls)} {self.stalls[:6]}",
            f"  {'LEDGER BALANCED' if self.ledger.ok else 'LEDGER BROKEN'} (seed {s.seed})",
        ]
        return "\n".join(lines)


async def run_chaos(system: System, settings: ChaosSettings, work: Path) -> ChaosResult:
    """The whole chaos run against a started `system` (fresh: no devices yet)."""
    with _keep_done_items(settings.days):
        return await _run_chaos(system, settings, work)


@contextlib.contextmanager
def _keep_done_items(days: float) -> Iterator[None]:
    """Stations keep their done items for the whole run, not 2 days (speaker/role.py KEEP_DONE_S).

    The one artifact of accelerating only the stations: the controller lives in real time, so
    to it the whole virtual week is still ahead and every desired state lists items a station
    played virtual days ago. A station that had pruned one (done for 2 virtual days) took it for
    new and reported it `missed` — found as `misreported` items in the first 7-day runs. On a
    real station the controller drops an item 10 min after its end, long before the prune."""
    before = speaker_role.KEEP_DONE_S
    speaker_role.KEEP_DONE_S = max(before, (days + 2) * 86400)
    try:
        yield
    finally:
        speaker_role.KEEP_DONE_S = before


async def _run_chaos(system: System, settings: ChaosSettings, work: Path) -> ChaosResult:
    t_start = time.monotonic()
    timings: dict[str, float] = {}
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(settings.seed)  # noqa: S311 - a reproducible fault plan, not a secret
    n = settings.stations
    commune_a, commune_b = system.communes[0]["id"], system.communes[1]["id"]
    for i in range(n):
        await system.api_json("POST", "/api/v1/devices", json={
            "name": f"Cụm loa {i + 1:02d}", "kind": "speaker",
            "commune_id": commune_a if i % 2 == 0 else commune_b,
            "tags": ["ven-song"] if i % 5 == 0 else [],
        })  # fmt: skip
    configs = await provision(ApiClient(system.base_url, system.token), n, system.root / "stations")
    board_configs = []
    if settings.led_boards:
        board_configs = await provision_led(ApiClient(system.base_url, system.token), settings.led_boards,
                                            system.root / "boards", protocols=LED_PROTOCOLS)
    every = {d["uid"]: d for d in await system.api_json("GET", "/api/v1/devices")}
    devices = {uid: d for uid, d in every.items() if d["kind"] == "speaker"}
    clips = [await _upload_tone(system, work, f"lich{k}", f) for k, f in enumerate((440, 660, 880))]
    emergency_count = max(1, round(settings.emergencies_per_day * settings.days))
    em_clips = [await _upload_tone(system, work, f"khan{k}", 300 + 37 * k) for k in range(emergency_count)]
    timings["setup"] = time.monotonic() - t_start

    now_local = datetime.now(TZ)
    midnight = (now_local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    v0 = midnight.timestamp()
    v_end = v0 + settings.days * 86400
    plans = [
        ("Bản tin sáng và chiều", clips[0], "FREQ=DAILY;BYHOUR=6,18;BYMINUTE=0;BYSECOND=0", {"all": True},
         "normal"),
        ("Lịch tiêm chủng", clips[1], "FREQ=DAILY;BYHOUR=12;BYMINUTE=0;BYSECOND=0",
         {"communes": [commune_a]}, "normal"),
        ("Cảnh báo lũ", clips[2], "FREQ=DAILY;BYHOUR=3,9,15,21;BYMINUTE=0;BYSECOND=0", {"tags": ["ven-song"]},
         "priority"),
    ]
    occurrences: list[Occurrence] = []
    for title, clip, rule, targets, prio in plans:
        created = await system.api_json("POST", "/api/v1/schedules", json={
            "title": title, "media": [clip["sha256"]], "rrule": rule,
            "dtstart": midnight.replace(tzinfo=None).isoformat(), "targets": targets, "priority": prio})
        instants = await system.api_json("GET", f"/api/v1/schedules/{created['id']}/occurrences", params={
            "from": midnight.isoformat(), "to": datetime.fromtimestamp(v_end, TZ).isoformat()})
        for d in devices.values():
            if (targets.get("all") or d["commune_id"] in targets.get("communes", [])
                    or set(targets.get("tags", [])) & set(d.get("tags") or [])):
                for t in instants:
                    ts = datetime.fromisoformat(t).astimezone(UTC)
                    if ts.timestamp() < v_end:
                        occurrences.append(Occurrence(d["id"], f"s{created['id']}@{ts:%Y%m%dT%H%M%SZ}",
                                                      clip["sha256"], ts.timestamp(), f"schedule {title}"))

    clock = AcceleratedClock(settings.speed, start=v0, running=False)
    stations: list[ChaosStation] = []
    for i, cfg in enumerate(configs):
        proxy = CuttableProxy("127.0.0.1", cfg.mqtt_port)
        await proxy.start()
        cfg = cfg.model_copy(update={
            "late_start_tolerance_s": TOLERANCE_S, "prepare_ahead_s": TOLERANCE_S, "mqtt_port": proxy.port,
            "mqtt_reconnect_cap_s": 4.0, "mqtt_reconnect_base_s": 0.5,
            "receipt_wait_s": 3.0, "receipt_wait_cap_s": 12.0,  # real seconds: the week runs fast
        })  # fmt: skip
        sclock = StationClock(clock)
        dev = devices[cfg.uid]["id"]
        stations.append(ChaosStation(i, dev, cfg, proxy, sclock, LedgerSink(dev, sclock, clock)))
    world = World(system, clock, stations)
    serial = [i for i in range(n) if settings.serial_every and i % settings.serial_every == 0]
    faults = plan_faults(rng, settings.fault_count, v0, v_end, n, settings.kinds, serial)
    link = ("mqtt_reconnect_cap_s", "mqtt_reconnect_base_s", "receipt_wait_s", "receipt_wait_cap_s")
    fast = {k: getattr(stations[0].config, k) for k in link}  # the boards' link runs as fast as the speakers'
    boards = [ChaosBoard(k, every[cfg.uid]["id"], cfg.model_copy(update=fast))
              for k, cfg in enumerate(board_configs)]
    led = LedPlan(system, clock, boards)
    slots = [v0 + k * 3 * HOUR + 0.5 * HOUR for k in range(int(settings.days * 8))]
    em_sends = sorted(rng.sample(slots, min(emergency_count, len(slots))))
    emergencies: list[dict[str, Any]] = []
    lag = LoopLag(clock)
    try:
        for i in serial:
            await stations[i].add_cabinet(clock)
        # Fetch and decode the schedules' audio before virtual time runs (an installer's first boot);
        # the emergencies' clips are fetched when they come.
        for st in stations:
            st.build()
            assert st.host is not None
            for clip in clips:
                path = await st.host.role.media.ensure(MediaRef(sha256=clip["sha256"], size=clip["size"],
                                                                duration_s=clip["duration_s"]))
                await st.sink.prepare([path])
            await st.host.start()
        want = defaultdict(set)
        for occ in occurrences:
            want[occ.device_id].add(occ.item_id)

        async def horizons() -> list[bool]:
            return [{i.item_id for i in st.host.store.pending_items()} >= want[st.device_id]  # type: ignore[union-attr]
                    for st in stations]

        await eventually(horizons, all, timeout=120, interval=0.2, what="each station's horizon in its store")
        for board in boards:
            await board.start()
        if boards:
            welcome = await led.post("Chào mừng đến với xã – bản tin lúc 6h và 18h", "normal",
                                     "welcome (no end)", duration_s=1)

            async def shown() -> list[bool]:
                return [b.showing == welcome.on_board for b in boards]

            await eventually(shown, all, timeout=60, interval=0.2, what="the welcome text on every LED board")
        timings["stations_ready"] = time.monotonic() - t_start

        t_run = time.monotonic()
        clock.run()
        lag.start()
        tasks = [asyncio.create_task(f.run(world), name=f"chaos-{f.kind}") for f in faults]
        tasks += [asyncio.create_task(_emergency(world, at, em_clips[k], k, settings.seed, emergencies,
                                                 led if boards else None))
                  for k, at in enumerate(em_sends)]
        days = [v0 + d * 86400 for d in range(math.ceil(settings.days))] if boards else []
        tasks += [asyncio.create_task(led.day(v_day, d, v_end)) for d, v_day in enumerate(days)]
        await clock.sleep_until(v_end)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        steps = [f.kind for f in faults] + ["emergency"] * len(em_sends) + ["led day"] * len(days)
        for step, res in zip(steps, results, strict=True):
            if isinstance(res, BaseException):
                raise RuntimeError(f"chaos step {step} failed: {res!r}") from res
        timings["run"] = time.monotonic() - t_run
        for e in emergencies:
            for st in stations:
                occurrences.append(Occurrence(st.device_id, e["item_id"], e["sha256"], e["start"],
                                              "emergency"))

        starts = {(o.device_id, o.item_id): o.start for o in occurrences}

        async def sections(ledger: Ledger) -> None:
            """The serial lines' and the LED boards' parts of the ledger."""
            ledger.serial = serial_ledger(
                [(st.device_id, st.cabinet, st.sink.sounds, st.relay_held(), await _relay_faults(system, st))
                 for st in stations if st.cabinet is not None],
                [f.detail for f in faults if f.kind == "serial_garble" and "after" in f.detail],
                ledger.items, starts, lead_s=0.1 * HOUR)
            ledger.led = await led_ledger(system, boards, led.texts) if boards else LedLedger()

        t_settle = time.monotonic()
        ledger = await _settle(world, occurrences, [e["broadcast_id"] for e in emergencies], v_end,
                               settings.settle_s, sections)
        timings["settle"] = time.monotonic() - t_settle
        _blame(ledger, occurrences, faults)
        with (work / "sounds.jsonl").open("w") as out:  # what every speaker sounded, for a post-mortem
            for st in stations:
                for snd in st.sink.sounds:
                    out.write(json.dumps({**asdict(snd), "at": _iso(snd.true_started_at)}) + "\n")
    finally:
        await lag.stop()
        for st in stations:
            await st.stop()
            await st.proxy.close()
            if st.cabinet is not None:
                await st.cabinet.close()
        for board in boards:
            await board.stop()
    timings["total"] = time.monotonic() - t_start
    timings["worst_loop_stall"] = lag.worst
    return ChaosResult(settings, ledger, faults, emergencies, (v0, v_end), timings,
                       [(_iso(at), round(late, 2)) for at, late in lag.stalls])


async def _emergency(world: World, send_at: float, clip: dict[str, Any], k: int, seed: int,
                     out: list[dict[str, Any]], led: LedPlan | None = None) -> None:
    """An operator sends an emergency at `send_at`, to play EMERGENCY_LEAD_S later (virtual); a
    controller that does not answer is asked again (and asked first whether the first try
    got through, so the retry never makes a second emergency). With LED boards it carries an
    LED text, which the controller mirrors on every board; the operator takes it down 2 virtual
    hours after the emergency played."""
    await world.clock.sleep_until(send_at)
    title = f"Khẩn cấp {k + 1} (chaos seed {seed})"
    tries = 0
    while True:
        tries += 1
        try:
            if tries > 1:
                known = [b for b in await world.system.api_json("GET", "/api/v1/broadcasts")
                         if b["title"] == title]
                if known:
                    created = known[0]
                    break
            start = datetime.fromtimestamp(world.vtime() + EMERGENCY_LEAD_S, UTC)
            created = await world.system.api_json("POST", "/api/v1/broadcasts", json={
                "title": title, "priority": "emergency", "media_sha256": clip["sha256"],
                "targets": {"all": True}, "start_at": start.isoformat(),
                **({"led_text": f"KHẨN CẤP {k + 1}: nước lũ lên nhanh, di dời ngay"} if led else {})})
            break
        except Exception as exc:  # the controller is down (killed by a fault): try again
            log.info("emergency %d not sent yet (%r); retrying", k, exc)
            await asyncio.sleep(0.3)
    while True:  # the controller may be killed again right now: ask until it answers
        try:
            bc = await world.system.api_json("GET", f"/api/v1/broadcasts/{created['id']}")
            break
        except Exception as exc:
            log.info("emergency %d: no answer yet (%r); asking again", k, exc)
            await asyncio.sleep(0.3)
    out.append({"broadcast_id": created["id"], "item_id": f"b{created['id']}", "sha256": clip["sha256"],
                "sent": _iso(send_at), "start": datetime.fromisoformat(bc["start_at"]).timestamp(),
                "start_local": _iso(datetime.fromisoformat(bc["start_at"]).timestamp()), "tries": tries})
    if led is not None:
        await led.emergency(created["id"], datetime.fromisoformat(bc["start_at"]).timestamp(), k)


async def _settle(world: World, occurrences: list[Occurrence], broadcast_ids: list[int], v_end: float,
                  settle_s: float, sections: Callable[[Ledger], Any]) -> Ledger:
    """Reconcile until nothing more can arrive: the ledger balances, or `settle_s` real seconds.
    `sections` adds the serial lines' and the LED boards' parts."""
    deadline = time.monotonic() + settle_s
    while True:
        rows = await world.system.api_json("GET", "/api/v1/play-log", params={"limit": 10000})
        states: dict[tuple[int, str], dict[str, Any]] = {}
        for bid in broadcast_ids:
            bc = await world.system.api_json("GET", f"/api/v1/broadcasts/{bid}")
            for s in bc.get("station_states", []):
                states[(s["device_id"], f"b{bid}")] = s
        sounds = [s for st in world.stations for s in st.sink.sounds]
        ledger = reconcile(occurrences, sounds, rows, states, v_end, _station_items(world))
        index = {st.device_id: st.index for st in world.stations}
        for b in ledger.breaking:
            b["station_index"] = index.get(b.get("device_id"))  # type: ignore[arg-type]
        await sections(ledger)
        if ledger.ok or time.monotonic() > deadline:
            return ledger
        await asyncio.sleep(1.0)


def _blame(ledger: Ledger, occurrences: Sequence[Occurrence], faults: Sequence[Fault]) -> None:
    """Name, on each breaking item, the faults that were on around its instant (from 1 h before
    to the end of its late-start tolerance): on its station, or on the broker or controller."""
    start = {(o.device_id, o.item_id): o.start for o in occurrences}
    for b in ledger.breaking:
        t = start.get((b.get("device_id"), b.get("item_id")))  # type: ignore[arg-type]
        if t is None:
            continue
        b["faults_near"] = sorted({
            f"{f.kind}{'' if f.target is None else f'@station {f.target}'}" for f in faults
            if f.began is not None and f.began <= t + TOLERANCE_S and (f.ended or f.began) >= t - HOUR
            and (f.infra or b.get("station_index") == f.target)
        })


async def _relay_faults(system: System, st: ChaosStation) -> int:
    """The amplifier_relay faults the controller holds from the station."""
    events = await system.api_json("GET", f"/api/v1/devices/{st.device_id}/events",
                                   params={"kind": "fault", "limit": 5000})
    return sum(1 for e in events if e.get("reason") == "amplifier_relay")


def _station_items(world: World) -> dict[tuple[int, str], tuple[str, str | None]]:
    """Every station's items as its own store has them (state, outcome)."""
    out: dict[tuple[int, str], tuple[str, str | None]] = {}
    for st in world.stations:
        if st.host is None:
            continue
        rows = st.host.store._db.execute("SELECT item_id, state, outcome FROM items").fetchall()
        out.update({(st.device_id, r[0]): (r[1], r[2]) for r in rows})
    return out


def write_json(result: ChaosResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result.as_json(), ensure_ascii=False, indent=1))
