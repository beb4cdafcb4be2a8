"""An amplifier cabinet: relay board, mains power meter and climate sensor on one RS-485 bus.

The register maps are those of device_agents.hardware.amplifier (see its docstring):

- relay board, address 1: coils 0..7, coil 0 switches the amplifier's mains;
- power meter like a PZEM-004T v3, address 2: input registers 0x0000..0x0009;
- climate sensor like an XY-MD02 (SHT20), address 3: input registers 0x0001..0x0002.

The physics is just enough for an agent to tell states apart: the amplifier draws
idle current when on, more while audio plays (scaled by volume), and only idle
current if the speaker line is cut, which is how a station detects a cut line.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from firmware_sim.faults import Faults
from firmware_sim.modbus_rtu import (
    ILLEGAL_DATA_ADDRESS,
    ModbusError,
    RtuSlave,
    RtuStats,
    SlaveDevice,
)

log = logging.getLogger(__name__)

RELAY_COILS = 8
MAINS_V = 230.0
MAINS_HZ = 50.0
IDLE_CURRENT_A = 0.15
PLAY_BASE_CURRENT_A = 0.6
PLAY_VOLUME_CURRENT_A = 0.8  # extra amps at volume 100
AMP_POWER_FACTOR = 0.92
NORMAL_TEMP_C = 35.0
OVERHEAT_TEMP_C = 68.0
NORMAL_HUMIDITY_PCT = 62.0


def _check_range(address: int, count: int, size: int, first: int = 0) -> None:
    if address < first or address + count > first + size:
        raise ModbusError(ILLEGAL_DATA_ADDRESS)


def _split32(value: int) -> list[int]:
    """PZEM order: low 16-bit word first, then high word."""
    value = max(0, min(value, 0xFFFFFFFF))
    return [value & 0xFFFF, value >> 16]


@dataclass(frozen=True)
class CabinetState:
    """What the physical devices measure at one instant."""

    relay_on: bool
    mains_v: float
    current_a: float
    power_w: float
    frequency_hz: float
    power_factor: float
    energy_wh: float
    temperature_c: float
    humidity_pct: float


class RelayBoard(SlaveDevice):
    """Eight-channel Modbus relay board; only coils are implemented."""

    def __init__(self, on_change: Callable[[int, bool], None]) -> None:
        self.coils = [False] * RELAY_COILS
        self._on_change = on_change

    def read_coils(self, address: int, count: int) -> list[bool]:
        """Relay states."""
        _check_range(address, count, RELAY_COILS)
        return self.coils[address : address + count]

    def write_coils(self, address: int, values: list[bool]) -> None:
        """Switch relays; each change is reported to the cabinet."""
        _check_range(address, len(values), RELAY_COILS)
        for offset, value in enumerate(values):
            index = address + offset
            if self.coils[index] != value:
                self.coils[index] = value
                self._on_change(index, value)


class PowerMeter(SlaveDevice):
    """PZEM-004T v3 style meter: ten input registers of scaled integers."""

    REGISTERS = 10

    def __init__(self, cabinet: AmplifierCabinet) -> None:
        self._cabinet = cabinet

    def read_input_registers(self, address: int, count: int) -> list[int]:
        """0 V(0.1) | I lo,hi (mA) | P lo,hi (0.1 W) | E lo,hi (Wh) | f (0.1 Hz) | pf (0.01) | alarm."""
        _check_range(address, count, self.REGISTERS)
        s = self._cabinet.measure()
        regs = [
            round(s.mains_v * 10),
            *_split32(round(s.current_a * 1000)),
            *_split32(round(s.power_w * 10)),
            *_split32(math.floor(s.energy_wh)),
            round(s.frequency_hz * 10),
            round(s.power_factor * 100),
            0,  # power alarm: not armed
        ]
        return regs[address : address + count]


class ClimateSensor(SlaveDevice):
    """XY-MD02 style sensor: 0x0001 temperature (0.1 °C, signed), 0x0002 humidity (0.1 %)."""

    def __init__(self, cabinet: AmplifierCabinet) -> None:
        self._cabinet = cabinet

    def read_input_registers(self, address: int, count: int) -> list[int]:
        """Temperature and humidity."""
        _check_range(address, count, 2, first=1)
        s = self._cabinet.measure()
        temp = round(s.temperature_c * 10) & 0xFFFF  # two's complement below 0 °C
        regs = {1: temp, 2: round(s.humidity_pct * 10)}
        return [regs[a] for a in range(address, address + count)]


class AmplifierCabinet:
    """The three devices of a station cabinet, as one handler for a serial line.

    The station bundle sets ``audio_state`` to a callable returning
    ``(playing, volume)`` so the meter sees the amplifier's load.
    """

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        relay_address: int = 1,
        meter_address: int = 2,
        climate_address: int = 3,
        amp_coil: int = 0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.faults = faults if faults is not None else Faults()
        self.audio_state: Callable[[], tuple[bool, int]] = lambda: (False, 0)
        self.amp_coil = amp_coil
        # (unix_ts, on) for every switch of the amplifier's coil.
        self.relay_history: list[tuple[float, bool]] = []
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - sensor noise
        self._clock = clock
        self._energy_wh = 0.0
        self._last_integration = clock()
        self.relay = RelayBoard(self._relay_changed)
        self.meter = PowerMeter(self)
        self.climate = ClimateSensor(self)
        self.slave = RtuSlave(
            {relay_address: self.relay, meter_address: self.meter, climate_address: self.climate}
        )

    @property
    def stats(self) -> RtuStats:
        """Bus counters (good/rejected frames...)."""
        return self.slave.stats

    @property
    def relay_on(self) -> bool:
        """Whether the amplifier's mains relay is closed."""
        return self.relay.coils[self.amp_coil]

    def feed(self, data: bytes, reply: Callable[[bytes], None]) -> None:
        """Serial-line handler: bytes from the bus master in, replies out."""
        self.slave.feed(data, reply)

    def _relay_changed(self, coil: int, on: bool) -> None:
        if coil != self.amp_coil:
            return
        self._integrate()
        now = self._clock()
        self.relay_history.append((now, on))
        log.info("cabinet: amplifier relay %s", "ON" if on else "OFF")

    def _load(self) -> tuple[float, float]:
        """(voltage, current) right now, noise-free."""
        if self.faults.mains_loss:
            return 0.0, 0.0
        if not self.relay_on:
            return MAINS_V, 0.0
        playing, volume = self.audio_state()
        if playing and not self.faults.cut_speaker_line:
            vol = min(max(volume, 0), 100)
            return MAINS_V, PLAY_BASE_CURRENT_A + PLAY_VOLUME_CURRENT_A * vol / 100
        return MAINS_V, IDLE_CURRENT_A

    def _integrate(self) -> None:
        """Accumulate energy at the load that held since the last call."""
        now = self._clock()
        volts, amps = self._load()
        dt = max(0.0, now - self._last_integration)
        self._energy_wh += volts * amps * AMP_POWER_FACTOR * dt / 3600.0
        self._last_integration = now

    def measure(self) -> CabinetState:
        """One set of readings, with a little noise as real sensors have."""
        self._integrate()
        volts, amps = self._load()
        if volts > 0:
            volts += self._rng.uniform(-0.4, 0.4)
        if amps > 0:
            amps = max(0.001, amps + self._rng.uniform(-0.01, 0.01))
        pf = AMP_POWER_FACTOR if amps > 0 else 0.0
        temp = OVERHEAT_TEMP_C if self.faults.overheat else NORMAL_TEMP_C
        return CabinetState(
            relay_on=self.relay_on,
            mains_v=volts,
            current_a=amps,
            power_w=volts * amps * pf,
            frequency_hz=MAINS_HZ if volts > 0 else 0.0,
            power_factor=pf,
            energy_wh=self._energy_wh,
            temperature_c=temp + self._rng.uniform(-0.3, 0.3),
            humidity_pct=NORMAL_HUMIDITY_PCT + self._rng.uniform(-1.0, 1.0),
        )
