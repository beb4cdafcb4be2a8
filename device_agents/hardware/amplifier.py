"""Amplifier power relay, mains power meter and cabinet climate over Modbus RTU (RS-485).

A station switches its amplifier on only around a broadcast (saves power, spares the
amplifier), and the amplifier's current tells a working speaker line from a cut one.
These are cheap off-the-shelf Modbus RTU boards sharing one RS-485 bus.

Register map (firmware_sim.relay_board implements the same devices):

Relay board, address 1
    Coils 0..7: FC 0x01 read coils, FC 0x05 write single coil, FC 0x0F write
    multiple coils. Coil 0 = amplifier mains power.

Power meter modelled on the PZEM-004T v3, address 2, input registers (FC 0x04)
    0x0000 voltage, 0.1 V
    0x0001 current low word, 0x0002 high word, 0.001 A
    0x0003 power low word, 0x0004 high word, 0.1 W
    0x0005 energy low word, 0x0006 high word, 1 Wh
    0x0007 frequency, 0.1 Hz
    0x0008 power factor, 0.01
    0x0009 alarm status (0xFFFF = power alarm)

Climate sensor modelled on the XY-MD02 (SHT20), address 3, input registers (FC 0x04)
    0x0001 temperature, 0.1 °C, signed int16
    0x0002 relative humidity, 0.1 %RH

pymodbus's client is synchronous and blocking on a serial port, so every call runs
in a worker thread, serialised by one asyncio.Lock: RS-485 is half duplex and a
second request before the first reply would corrupt both.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

log = logging.getLogger(__name__)

_R = TypeVar("_R", bound=ModbusPDU)

METER_REGISTERS = 10
CLIMATE_FIRST_REGISTER = 0x0001
CLIMATE_REGISTERS = 2


class HardwareError(Exception):
    """A board did not answer, answered garbage, or answered with a Modbus exception."""


@dataclass(frozen=True)
class PowerReading:
    """One snapshot of the cabinet, in physical units (NaN when not measured)."""

    relay_on: bool
    mains_v: float
    amp_current_a: float
    power_w: float
    frequency_hz: float
    cabinet_temp_c: float
    humidity_pct: float
    energy_wh: float = math.nan
    power_factor: float = math.nan


@runtime_checkable
class Amplifier(Protocol):
    """What an agent needs from the amplifier cabinet."""

    async def set_power(self, on: bool) -> None:
        """Switch the amplifier's mains; raises HardwareError on no reply / bad reply."""
        ...

    async def read(self) -> PowerReading:
        """Read relay state, meter and climate; raises HardwareError on failure."""
        ...

    async def close(self) -> None:
        """Release the serial port."""
        ...


@dataclass(frozen=True)
class ModbusBusConfig:
    """Where the RS-485 bus is and who sits on it."""

    url: str  # pyserial URL: /dev/ttyUSB0, /dev/pts/N, socket://host:port
    baudrate: int = 9600
    timeout_s: float = 0.5
    retries: int = 1
    relay_address: int = 1
    relay_coil: int = 0
    meter_address: int = 2
    climate_address: int = 3


def _u32(low: int, high: int) -> int:
    return (high << 16) | low


def _s16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class ModbusAmplifier(Amplifier):
    """Amplifier cabinet reached through pymodbus on a serial line (8N1)."""

    def __init__(self, config: ModbusBusConfig) -> None:
        self.config = config
        self._client = ModbusSerialClient(
            config.url,
            baudrate=config.baudrate,
            bytesize=8,
            parity="N",
            stopbits=1,
            timeout=config.timeout_s,
            retries=config.retries,
        )
        self._lock = asyncio.Lock()

    async def _call(self, what: str, request: Callable[[], _R]) -> _R:
        async with self._lock:
            return await asyncio.to_thread(self._call_sync, what, request)

    def _call_sync(self, what: str, request: Callable[[], _R]) -> _R:
        if not self._client.connected and not self._client.connect():
            raise HardwareError(f"cannot open RS-485 port {self.config.url}")
        try:
            response = request()
        except ModbusException as exc:
            raise HardwareError(f"{what}: no valid reply ({exc})") from exc
        except OSError as exc:  # port vanished (USB adapter unplugged...)
            self._client.close()  # type: ignore[no-untyped-call]
            raise HardwareError(f"{what}: serial port error ({exc})") from exc
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise HardwareError(f"{what}: device answered Modbus exception {code}")
        return response

    async def set_power(self, on: bool) -> None:
        """Close/open the amplifier relay and check the board echoed the command."""
        cfg = self.config
        response = await self._call(
            f"relay {cfg.relay_address} coil {cfg.relay_coil} := {on}",
            lambda: self._client.write_coil(cfg.relay_coil, on, device_id=cfg.relay_address),
        )
        if response.address != cfg.relay_coil or not response.bits or response.bits[0] != on:
            raise HardwareError(
                f"relay board echoed coil {response.address}={response.bits[:1]}, asked {cfg.relay_coil}={on}"
            )
        log.info("amplifier power %s", "ON" if on else "OFF")

    async def read(self) -> PowerReading:
        """Relay state, mains meter and cabinet climate, in that order on the bus."""
        cfg = self.config
        coils = await self._call(
            "read relay",
            lambda: self._client.read_coils(cfg.relay_coil, count=1, device_id=cfg.relay_address),
        )
        meter = await self._call(
            "read power meter",
            lambda: self._client.read_input_registers(0, count=METER_REGISTERS, device_id=cfg.meter_address),
        )
        climate = await self._call(
            "read climate sensor",
            lambda: self._client.read_input_registers(
                CLIMATE_FIRST_REGISTER, count=CLIMATE_REGISTERS, device_id=cfg.climate_address
            ),
        )
        m, c = meter.registers, climate.registers
        if not coils.bits or len(m) < METER_REGISTERS or len(c) < CLIMATE_REGISTERS:
            raise HardwareError("short reply from the cabinet")
        return PowerReading(
            relay_on=bool(coils.bits[0]),
            mains_v=m[0] / 10,
            amp_current_a=_u32(m[1], m[2]) / 1000,
            power_w=_u32(m[3], m[4]) / 10,
            frequency_hz=m[7] / 10,
            cabinet_temp_c=_s16(c[0]) / 10,
            humidity_pct=c[1] / 10,
            energy_wh=float(_u32(m[5], m[6])),
            power_factor=m[8] / 100,
        )

    async def close(self) -> None:
        """Close the port after any call in flight."""
        async with self._lock:
            await asyncio.to_thread(self._client.close)


class NoAmplifier(Amplifier):
    """Stations without a relay board: the amplifier is hard-wired on, nothing is measured."""

    async def set_power(self, on: bool) -> None:
        """Nothing to switch."""

    async def read(self) -> PowerReading:
        """relay_on=True (always powered), every measurement NaN."""
        nan = math.nan
        return PowerReading(
            relay_on=True,
            mains_v=nan,
            amp_current_a=nan,
            power_w=nan,
            frequency_hz=nan,
            cabinet_temp_c=nan,
            humidity_pct=nan,
        )

    async def close(self) -> None:
        """Nothing to release."""
