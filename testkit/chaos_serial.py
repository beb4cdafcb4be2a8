"""The chaos run's stations with a real amplifier seam (issue 18, "a garbled serial line").

A few speaker stations of `communecast bench chaos` (every `serial_every`-th) drive their
cabinet as a Pi does: the agent's own `ModbusAmplifier` (pymodbus, Modbus RTU) on a real pty to
the firmware simulator's cabinet (`firmware_sim.relay_board.AmplifierCabinet`: relay board,
power meter, climate sensor). The cabinet and its line are the station's hardware: they outlive
a power cut of the agent, as the speaker does. The `serial_garble` fault (testkit/chaos.py)
switches the simulator's own line faults (`firmware_sim.faults.Faults.garble` and
`garble_requests`: `firmware_sim.serial_line.garble_bytes` on the replies or on the requests) in
bursts for its duration.

What the ledger checks on these stations, beside every play (`serial_ledger`):

- `garble_acted`: during a fault the line garbled more requests than the cabinet rejected by
  CRC (a garbled frame was acted on);
- `amp_hung`: after the fault, the agent's own driver did not answer a read within
  HUNG_AFTER_S real seconds;
- `unamplified`: a sound began with the amplifier relay off, and the station's last attempt to
  switch it on had not failed (a failed one is reported as an `amplifier_relay` fault: by design
  the item plays anyway, speaker/relay.py);
- `relay_stuck`: at the end, the station's relay is held by nobody who plays;
- `relay_fault_lost`: the controller holds fewer `amplifier_relay` faults from the station than
  its relay switches that failed.

Time: the driver's timeouts are real seconds and the run goes at one virtual hour per real
second, so they are shortened (MODBUS_TIMEOUT_S, 6 virtual minutes), the relay's lead before an
item is 0.1 virtual hour (a clean switch takes ~10 ms real, 36 virtual seconds) and its hold
after one 0.05 s real (3 virtual minutes), so every item switches the amplifier on again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from device_agents.common.clock import Clock
from device_agents.hardware.amplifier import Amplifier, HardwareError, ModbusAmplifier, PowerReading
from firmware_sim.faults import Faults
from firmware_sim.relay_board import AmplifierCabinet
from firmware_sim.serial_line import PtyLine

MODBUS_TIMEOUT_S = 0.1  # real seconds per try (pymodbus), 1 retry: a dead call costs ~0.22 s real
MODBUS_RETRIES = 1
HUNG_AFTER_S = 5.0  # real seconds: the agent's driver must answer a read this soon after the noise
SERIAL_BREAKING = ("garble_acted", "amp_hung", "unamplified", "relay_stuck", "relay_fault_lost")


def serial_config(speed: float) -> dict[str, Any]:
    """AgentConfig for a station with a relay board: the relay's lead and hold, and a telemetry
    period that reads the cabinet about once a virtual hour (3 Modbus calls)."""
    return {"relay_lead_s": 0.1 * 3600, "relay_hold_s": 180 / speed, "telemetry_interval_s": 3600 / speed}


@dataclass
class Switch:
    """One relay switch the agent tried: virtual instant, on/off, and its error (None: done)."""

    at: float
    on: bool
    error: str | None = None


class Cabinet:
    """A station's amplifier cabinet on a real pty (kept across the agent's power cuts)."""

    def __init__(self, sounding: Callable[[], tuple[bool, int]], clock: Clock) -> None:
        self.faults = Faults()
        self.cabinet = AmplifierCabinet(self.faults, clock=clock.time)
        self.cabinet.audio_state = sounding
        self.line = PtyLine(self.cabinet, self.faults)
        self.switches: list[Switch] = []  # every switch any life of the agent tried
        self.read_errors = 0

    @property
    def url(self) -> str:
        return self.line.url

    async def start(self) -> None:
        await self.line.start()

    async def close(self) -> None:
        await self.line.close()

    def counters(self) -> dict[str, int]:
        """What the line garbled and what the cabinet saw, now."""
        s = self.cabinet.stats
        return {"garbled_requests": self.line.garbled_requests, "garbled_replies": self.line.garbled_replies,
                "rejected_frames": s.rejected_frames, "good_frames": s.good_frames,
                "relay_errors": sum(1 for w in self.switches if w.error), "read_errors": self.read_errors}

    async def noise(self, rng: random.Random) -> None:
        """Bursts of noise until cancelled: each 20-80 ms real the requests, the replies or
        neither come through with flipped bits."""
        try:
            while True:
                r = rng.random()
                self.faults.garble_requests = r < 0.35
                self.faults.garble = 0.35 <= r < 0.7
                await asyncio.sleep(rng.uniform(0.02, 0.08))
        finally:
            self.faults.garble_requests = self.faults.garble = False


class RecordingAmplifier(Amplifier):
    """The agent's ModbusAmplifier, noting each relay switch it tries in its cabinet's record."""

    def __init__(self, inner: ModbusAmplifier, cabinet: Cabinet, clock: Clock) -> None:
        self.inner, self.cabinet, self.clock = inner, cabinet, clock

    async def set_power(self, on: bool) -> None:
        switch = Switch(self.clock.time(), on, "cancelled")  # until the driver answers
        self.cabinet.switches.append(switch)
        try:
            await self.inner.set_power(on)
        except HardwareError as exc:
            switch.error = str(exc)
            raise
        switch.error = None

    async def read(self) -> PowerReading:
        try:
            return await self.inner.read()
        except HardwareError:
            self.cabinet.read_errors += 1
            raise

    async def close(self) -> None:
        await self.inner.close()


async def probe(amp: ModbusAmplifier) -> float | None:
    """Real seconds the agent's driver took to answer a read (None: not within HUNG_AFTER_S)."""
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(amp.read(), HUNG_AFTER_S)
    except (TimeoutError, HardwareError):
        return None
    return time.monotonic() - t0


@dataclass
class SerialLedger:
    """The stations with a relay board: what the noise did and what it must not have done."""

    stations: int = 0
    sounds: int = 0
    unamplified_reported: int = 0  # sounded with the relay off after a reported switch failure
    relay_errors: int = 0  # switches that failed, over the whole run
    relay_faults: int = 0  # amplifier_relay faults the controller holds from these stations
    faults: list[dict[str, Any]] = field(default_factory=list)  # one per serial_garble fault
    totals: Counter[str] = field(default_factory=Counter)  # summed over the faults
    plays_in_faults: Counter[str] = field(default_factory=Counter)  # outcome -> count
    breaking: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaking

    def count(self, kind: str) -> int:
        return sum(1 for b in self.breaking if b["kind"] == kind)

    def as_json(self) -> dict[str, Any]:
        return {"stations": self.stations, "sounds": self.sounds, "relay_errors": self.relay_errors,
                "relay_faults_at_controller": self.relay_faults,
                "unamplified_reported": self.unamplified_reported, "totals": dict(self.totals),
                "plays_in_faults": dict(self.plays_in_faults),
                "faults": self.faults, "breaking": {k: self.count(k) for k in SERIAL_BREAKING}, "ok": self.ok}

    def summary(self) -> list[str]:
        t = self.totals
        probes = [f["probe_s"] for f in self.faults if f["probe_s"] is not None]
        return [
            f"  serial line: {self.stations} stations with a Modbus cabinet on a pty, {len(self.faults)} "
            f"serial_garble faults: garbled requests {t['garbled_requests']} (rejected by CRC "
            f"{t['rejected_frames']}), garbled replies {t['garbled_replies']}, relay switch errors "
            f"{t['relay_errors']}, cabinet read errors {t['read_errors']}",
            f"    plays during the noise: {dict(self.plays_in_faults.most_common())}; the driver answered "
            f"after {len(probes)} of {len(self.faults)} faults"
            + (f" (slowest {max(probes) * 1000:.0f} ms real)" if probes else ""),
            f"    whole run: relay switch errors {self.relay_errors}, amplifier_relay faults at the "
            f"controller {self.relay_faults}; {self.sounds} sounds, {self.unamplified_reported} with the "
            "relay off after a reported switch failure",
            "    breaking: " + ", ".join(f"{k} {self.count(k)}" for k in SERIAL_BREAKING),
        ]


def serial_ledger(
    stations: Sequence[tuple[int, Cabinet, Sequence[Any], bool, int]],
    # (device id, cabinet, sounds, relay held at the end, amplifier_relay faults the controller holds)
    faults: Sequence[dict[str, Any]],  # each garble fault: device_id, began, ended, before, after, probe_s
    outcomes: dict[tuple[int, str], str],  # (device id, item id) -> the main ledger's outcome
    starts: dict[tuple[int, str], float],  # (device id, item id) -> planned instant
    lead_s: float,  # an item switches the relay on this long before its instant
) -> SerialLedger:
    led = SerialLedger(stations=len(stations))
    for device_id, cab, sounds, relay_held, reported in stations:
        ons = [w for w in cab.switches if w.on]
        failed = sum(1 for w in cab.switches if w.error and w.error != "cancelled")
        led.relay_errors += failed
        led.relay_faults += reported
        if reported < failed:
            led.breaking.append({"kind": "relay_fault_lost", "device_id": device_id, "failed": failed,
                                 "reported": reported})
        for snd in sounds:
            led.sounds += 1
            if snd.amp_on is not False:
                continue
            before = [w for w in ons if w.at <= snd.started_at]
            if before and before[-1].error and before[-1].error != "cancelled":
                led.unamplified_reported += 1
            else:
                led.breaking.append({"kind": "unamplified", "device_id": device_id, "sha256": snd.sha256[:12],
                                     "at": snd.true_started_at,
                                     "last_switch_on": vars(before[-1]) if before else None})
        if relay_held:
            led.breaking.append({"kind": "relay_stuck", "device_id": device_id})
    for f in faults:
        delta = {k: f["after"][k] - f["before"][k] for k in f["after"]}
        led.totals.update(delta)
        plays = Counter(outcomes.get(key, "?") for key, t in starts.items()
                        if key[0] == f["device_id"] and f["began"] <= t <= f["ended"] + lead_s)
        led.plays_in_faults.update(plays)
        led.faults.append({**{k: v for k, v in f.items() if k not in ("before", "after", "began", "ended")},
                           **delta,
                           "plays": dict(plays)})
        if delta["rejected_frames"] < delta["garbled_requests"]:
            led.breaking.append({"kind": "garble_acted", "device_id": f["device_id"], **delta})
        if f["probe_s"] is None:
            led.breaking.append({"kind": "amp_hung", "device_id": f["device_id"]})
    return led
