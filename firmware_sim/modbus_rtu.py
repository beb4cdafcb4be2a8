"""Modbus RTU, slave (device) side, written from the specification.

This is the firmware stand-in: the agent talks to it with pymodbus, so a bug in
either side's framing, CRC or register encoding shows up as a failed test rather
than two copies of the same mistake.

Framing: a real device delimits frames by 3.5 character times of silence. Over a
pty or TCP the timing is not reliable, so frames are cut by length (known from the
function code) and confirmed by CRC; bytes that do not form a valid frame are
dropped one at a time until the stream resynchronises, and a partial frame left
alone for more than ``gap_s`` is discarded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Exception codes a device returns in place of a normal reply.
ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03

BROADCAST = 0
MAX_FRAME = 256
MIN_FRAME = 4  # address, function, CRC(2)

READ_COILS = 0x01
READ_DISCRETE_INPUTS = 0x02
READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
WRITE_SINGLE_COIL = 0x05
WRITE_SINGLE_REGISTER = 0x06
WRITE_MULTIPLE_COILS = 0x0F
WRITE_MULTIPLE_REGISTERS = 0x10

_FIXED_LENGTH = {
    READ_COILS: 8,
    READ_DISCRETE_INPUTS: 8,
    READ_HOLDING_REGISTERS: 8,
    READ_INPUT_REGISTERS: 8,
    WRITE_SINGLE_COIL: 8,
    WRITE_SINGLE_REGISTER: 8,
}
_BYTE_COUNT_FUNCTIONS = (WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS)
_WRITE_FUNCTIONS = frozenset(
    {WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS}
)


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS: reflected polynomial 0xA001, initial value 0xFFFF.

    On the wire the CRC goes low byte first (see ``with_crc``).
    """
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(frame: bytes) -> bytes:
    """Append the CRC, low byte first, as every Modbus RTU frame ends."""
    return frame + crc16_modbus(frame).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    """True when the last two bytes are the correct CRC of the rest."""
    return len(frame) >= MIN_FRAME and crc16_modbus(frame[:-2]) == int.from_bytes(frame[-2:], "little")


class ModbusError(Exception):
    """Raised by a device handler to answer with a Modbus exception response."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or f"modbus exception {code:#04x}")
        self.code = code


class SlaveDevice:
    """One addressable device on the bus; override the functions it supports.

    Anything not overridden answers ILLEGAL FUNCTION, as a real device would.
    """

    def read_coils(self, address: int, count: int) -> list[bool]:
        """FC 0x01."""
        raise ModbusError(ILLEGAL_FUNCTION)

    def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        """FC 0x02."""
        raise ModbusError(ILLEGAL_FUNCTION)

    def read_holding_registers(self, address: int, count: int) -> list[int]:
        """FC 0x03."""
        raise ModbusError(ILLEGAL_FUNCTION)

    def read_input_registers(self, address: int, count: int) -> list[int]:
        """FC 0x04."""
        raise ModbusError(ILLEGAL_FUNCTION)

    def write_coils(self, address: int, values: list[bool]) -> None:
        """FC 0x05 (one value) and 0x0F."""
        raise ModbusError(ILLEGAL_FUNCTION)

    def write_registers(self, address: int, values: list[int]) -> None:
        """FC 0x06 (one value) and 0x10."""
        raise ModbusError(ILLEGAL_FUNCTION)


@dataclass
class RtuStats:
    """Counters a test reads to see what the device side saw."""

    good_frames: int = 0  # CRC-valid frames, whoever they were addressed to
    rejected_frames: int = 0  # bad CRC, garbage runs, partial frames timed out
    foreign_frames: int = 0  # valid frames for addresses not on this bus
    broadcasts: int = 0
    replies: int = 0
    exception_replies: int = 0


def _pack_bits(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _unpack_bits(data: bytes, count: int) -> list[bool]:
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "big")


class RtuSlave:
    """The slave side of one RS-485 bus: frames bytes, dispatches to devices, replies.

    ``feed`` matches the byte-handler interface of firmware_sim.serial_line.
    """

    def __init__(
        self,
        devices: Mapping[int, SlaveDevice],
        *,
        gap_s: float = 0.050,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.devices = devices
        self.gap_s = gap_s
        self._clock = clock
        self.stats = RtuStats()
        self._buf = bytearray()
        self._last_rx = 0.0
        self._in_garbage = False
        self._waiters: list[asyncio.Event] = []

    # -- byte stream -----------------------------------------------------------------

    def feed(self, data: bytes, reply: Callable[[bytes], None]) -> None:
        """Take bytes as they arrive on the line; call ``reply`` for each answer."""
        now = self._clock()
        if now - self._last_rx > self.gap_s:
            # Silence ends a frame: what is left is a fragment, and garbage that
            # follows is a new incident.
            if self._buf:
                self._reject(f"partial frame {bytes(self._buf).hex(' ')} timed out")
                self._buf.clear()
            self._end_garbage_run()
        self._last_rx = now
        self._buf += data
        self._parse(reply)
        self._notify()

    def _parse(self, reply: Callable[[bytes], None]) -> None:
        buf = self._buf
        while len(buf) >= 2:
            length = self._frame_length(buf)
            if length == 0:  # need more bytes to decide
                return
            if length < 0 or not crc_ok(bytes(buf[:length])):
                self._drop_garbage_byte()
                continue
            frame = bytes(buf[:length])
            del buf[:length]
            self._end_garbage_run()
            self._handle_frame(frame, reply)

    def _frame_length(self, buf: bytearray) -> int:
        """Length of the frame at the head of ``buf``; 0 = wait for more; -1 = not a frame."""
        address, function = buf[0], buf[1]
        if address > 247:  # 248..255 are reserved: cannot start a request
            return -1
        if function in _FIXED_LENGTH:
            need = _FIXED_LENGTH[function]
            return need if len(buf) >= need else 0
        if function in _BYTE_COUNT_FUNCTIONS:
            if len(buf) < 7:
                return 0
            need = 7 + buf[6] + 2
            return need if len(buf) >= need else 0
        # Unknown function: its length is unknowable, so accept it only if the bytes
        # at hand end in a valid CRC (frames arrive whole over a pty or socket).
        for length in range(MIN_FRAME, min(len(buf), MAX_FRAME) + 1):
            if crc_ok(bytes(buf[:length])):
                return length
        return -1

    def _drop_garbage_byte(self) -> None:
        if not self._in_garbage:
            self._in_garbage = True
            self.stats.rejected_frames += 1
            log.warning(
                "modbus slave: rejected bad-CRC or garbage bytes %s, resynchronising",
                bytes(self._buf[:16]).hex(" "),
            )
        del self._buf[0]

    def _end_garbage_run(self) -> None:
        self._in_garbage = False

    def _reject(self, why: str) -> None:
        self.stats.rejected_frames += 1
        log.warning("modbus slave: rejected %s", why)

    # -- frames ----------------------------------------------------------------------

    def _handle_frame(self, frame: bytes, reply: Callable[[bytes], None]) -> None:
        self.stats.good_frames += 1
        address, function, body = frame[0], frame[1], frame[2:-2]
        if address == BROADCAST:
            self.stats.broadcasts += 1
            if function in _WRITE_FUNCTIONS:
                for member in self.devices.values():
                    try:
                        self._execute(member, function, body)
                    except ModbusError as exc:
                        log.info("modbus slave: broadcast fc=%#04x failed: %s", function, exc)
            return  # broadcasts are never answered
        device: SlaveDevice | None = self.devices.get(address)
        if device is None:
            self.stats.foreign_frames += 1
            return  # another device's frame: stay silent
        try:
            payload = self._execute(device, function, body)
        except ModbusError as exc:
            self.stats.exception_replies += 1
            response = bytes((address, function | 0x80, exc.code))
        else:
            response = bytes((address, function)) + payload
        self.stats.replies += 1
        reply(with_crc(response))

    def _execute(self, device: SlaveDevice, function: int, body: bytes) -> bytes:
        """Run one request against ``device``; return the reply PDU after the function code."""
        if function in (READ_COILS, READ_DISCRETE_INPUTS):
            start, count = _u16(body, 0), _u16(body, 2)
            if not 1 <= count <= 2000:
                raise ModbusError(ILLEGAL_DATA_VALUE)
            read_bits = device.read_coils if function == READ_COILS else device.read_discrete_inputs
            packed = _pack_bits(read_bits(start, count))
            return bytes((len(packed),)) + packed
        if function in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
            start, count = _u16(body, 0), _u16(body, 2)
            if not 1 <= count <= 125:
                raise ModbusError(ILLEGAL_DATA_VALUE)
            read_regs = (
                device.read_holding_registers
                if function == READ_HOLDING_REGISTERS
                else device.read_input_registers
            )
            values = read_regs(start, count)
            return bytes((2 * len(values),)) + b"".join((v & 0xFFFF).to_bytes(2, "big") for v in values)
        if function == WRITE_SINGLE_COIL:
            value = _u16(body, 2)
            if value not in (0x0000, 0xFF00):
                raise ModbusError(ILLEGAL_DATA_VALUE)
            device.write_coils(_u16(body, 0), [value == 0xFF00])
            return body  # the reply echoes the request
        if function == WRITE_SINGLE_REGISTER:
            device.write_registers(_u16(body, 0), [_u16(body, 2)])
            return body
        if function == WRITE_MULTIPLE_COILS:
            start, count, nbytes = _u16(body, 0), _u16(body, 2), body[4]
            if not 1 <= count <= 1968 or nbytes != (count + 7) // 8 or len(body) != 5 + nbytes:
                raise ModbusError(ILLEGAL_DATA_VALUE)
            device.write_coils(start, _unpack_bits(body[5:], count))
            return body[:4]
        if function == WRITE_MULTIPLE_REGISTERS:
            start, count, nbytes = _u16(body, 0), _u16(body, 2), body[4]
            if not 1 <= count <= 123 or nbytes != 2 * count or len(body) != 5 + nbytes:
                raise ModbusError(ILLEGAL_DATA_VALUE)
            device.write_registers(start, [_u16(body, 5 + 2 * i) for i in range(count)])
            return body[:4]
        raise ModbusError(ILLEGAL_FUNCTION)

    # -- waiting (tests) ---------------------------------------------------------------

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for event in waiters:
            event.set()

    async def wait_stats(
        self,
        predicate: Callable[[RtuStats], bool],
        timeout: float,
    ) -> RtuStats:
        """Wait until ``predicate(stats)`` holds, so tests need not sleep and hope."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.stats):
                    event = asyncio.Event()
                    self._waiters.append(event)
                    await event.wait()
        except TimeoutError:
            raise TimeoutError(
                f"modbus slave stats did not reach the expected state in {timeout}s: {self.stats}"
            ) from None
        return self.stats
