"""Onbon BX-5K/BX-6K controller protocol (serial), written from the published frame layout.

Frame on the wire::

    A5 x8 (preamble) | escaped( packet | CRC-16/ARC little-endian ) | 5A

Packet (little-endian fields)::

    dst addr (2) | src addr (2) | reserved (5) | display mode (1) | device type (1, FE = any)
    | protocol version (1, 02) | data length (2) | data: group (1) cmd (1) reply flag (1)
    reserved (2) payload...

Inside the escaped part A5 -> A6 02, A6 -> A6 01, 5A -> 5B 02, 5B -> 5B 01, so the preamble
and the tail byte never appear inside a frame. Which frames were checked against what: docs/led.md.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import serial

from device_agents.led.driver import BoardContent, BoardStatus, LedController, LedError, SerialPort
from device_agents.led.text import to_board_ascii

PREAMBLE = b"\xa5" * 8
TAIL = 0x5A
DEVICE_ANY = 0xFE
PROTOCOL_VERSION = 0x02
SCREEN_ADDR = 0x0001
PC_ADDR = 0x8000
REPLY, NO_REPLY = 0x01, 0x02

# (group, command)
PING = (0xA2, 0x00)
READ_STATUS = (0xA1, 0x02)
DYNAMIC_AREA = (0xA3, 0x06)
RESULT = (0xA0, 0x00)  # the controller's answer; payload byte 0 = error code (0 = fine)
ERR_CRC = 0x01
ERR_BAD_COMMAND = 0x02

# Display effects of a dynamic area (1 = static; our mapping for the others, see docs/led.md).
EFFECTS = {"hold": 0x01, "flash": 0x01, "rotate": 0x02, "scroll": 0x03}
EFFECT_NAMES = {0x01: "hold", 0x02: "rotate", 0x03: "scroll"}


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC: poly 0x8005 reflected (0xA001), init 0, no final xor."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


_ESC = {0xA5: b"\xa6\x02", 0xA6: b"\xa6\x01", 0x5A: b"\x5b\x02", 0x5B: b"\x5b\x01"}


def escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        out += _ESC.get(b, bytes([b]))
    return bytes(out)


def unescape(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b in (0xA6, 0x5B):
            if i + 1 >= len(data) or data[i + 1] not in (1, 2):
                raise ValueError(f"bad escape at {i}")
            out.append({(0xA6, 1): 0xA6, (0xA6, 2): 0xA5, (0x5B, 1): 0x5B, (0x5B, 2): 0x5A}[(b, data[i + 1])])
            i += 2
            continue
        if b in (0xA5, 0x5A):
            raise ValueError(f"unescaped 0x{b:02X} inside a frame")
        out.append(b)
        i += 1
    return bytes(out)


def frame(group: int, cmd: int, payload: bytes = b"", *, reply: int = REPLY, reserved: bytes = b"\0\0",
          dst: int = SCREEN_ADDR, src: int = PC_ADDR, device_type: int = DEVICE_ANY) -> bytes:
    data = bytes([group, cmd, reply]) + reserved + payload
    pkt = (struct.pack("<HH", dst, src) + bytes(5) + bytes([0, device_type, PROTOCOL_VERSION])
           + struct.pack("<H", len(data)) + data)
    return PREAMBLE + escape(pkt + struct.pack("<H", crc16_arc(pkt))) + bytes([TAIL])


def ping(**kw: object) -> bytes:
    return frame(*PING, **kw)  # type: ignore[arg-type]


def read_status(**kw: object) -> bytes:
    return frame(*READ_STATUS, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DynamicArea:
    """One dynamic text area (geometry in pixels)."""

    area_id: int = 0
    x: int = 0
    y: int = 0
    width: int = 128
    height: int = 32
    text: bytes = b""
    effect: int = 0x01
    speed: int = 0x00
    stay_s: int = 5
    line_spacing: int = 0
    run_mode: int = 0x00  # 0 = loop
    timeout_s: int = 0
    single_line: int = 1
    new_line: int = 1
    exit_effect: int = 0
    area_type: int = 0x00

    def encode(self) -> bytes:
        body = (bytes([self.area_type]) + struct.pack("<HHHH", self.x, self.y, self.width, self.height)
                + bytes([self.area_id, self.line_spacing, self.run_mode]) + struct.pack("<H", self.timeout_s)
                + bytes(3) + bytes([self.single_line, self.new_line, self.effect, self.exit_effect,
                                    self.speed, self.stay_s])
                + struct.pack("<I", len(self.text)) + self.text)
        return struct.pack("<H", len(body)) + body

    @classmethod
    def decode(cls, raw: bytes) -> tuple[DynamicArea, int]:
        (length,) = struct.unpack_from("<H", raw, 0)
        body = raw[2 : 2 + length]
        if len(body) != length or length < 27:
            raise ValueError("area truncated")
        x, y, w, h = struct.unpack_from("<HHHH", body, 1)
        (timeout,) = struct.unpack_from("<H", body, 12)
        single, newl, effect, exit_e, speed, stay = body[17:23]
        (tlen,) = struct.unpack_from("<I", body, 23)
        text = body[27 : 27 + tlen]
        if len(text) != tlen:
            raise ValueError("area text truncated")
        area = cls(area_id=body[9], x=x, y=y, width=w, height=h, text=text, effect=effect, speed=speed,
                   stay_s=stay, line_spacing=body[10], run_mode=body[11], timeout_s=timeout,
                   single_line=single, new_line=newl, exit_effect=exit_e, area_type=body[0])
        return area, 2 + length


def dynamic_areas(areas: list[DynamicArea], *, delete: list[int] | None = None, delete_all: bool = False,
                  **kw: object) -> bytes:
    dels = b"\xff" if delete_all else bytes([len(delete or [])]) + bytes(delete or [])
    payload = dels + bytes([len(areas)]) + b"".join(a.encode() for a in areas)
    return frame(*DYNAMIC_AREA, payload, **kw)  # type: ignore[arg-type]


def clear(**kw: object) -> bytes:
    """Delete every dynamic area: the screen goes blank."""
    return dynamic_areas([], delete_all=True, **kw)


def result(code: int = 0, payload: bytes = b"", *, group: int = RESULT[0], cmd: int = RESULT[1]) -> bytes:
    """A controller's answer to the PC (addresses swapped)."""
    return frame(group, cmd, bytes([code]) + payload if (code or payload) else b"", reply=0x00,
                 dst=PC_ADDR, src=SCREEN_ADDR)


# -- parsing --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BxPacket:
    dst: int
    src: int
    device_type: int
    version: int
    group: int
    cmd: int
    reply: int
    payload: bytes


class CrcError(ValueError):
    pass


def parse_packet(escaped: bytes) -> BxPacket:
    """Parse what lies between the preamble and the tail byte; raise on a bad escape or CRC."""
    raw = unescape(escaped)
    if len(raw) < 16 + 2:
        raise ValueError("frame too short")
    pkt, crc = raw[:-2], struct.unpack("<H", raw[-2:])[0]
    if crc16_arc(pkt) != crc:
        raise CrcError(f"CRC 0x{crc:04X} != 0x{crc16_arc(pkt):04X}")
    dst, src = struct.unpack_from("<HH", pkt, 0)
    (length,) = struct.unpack_from("<H", pkt, 12)
    data = pkt[14:]
    if len(data) != length or length < 5:
        raise ValueError("length field does not match")
    return BxPacket(dst, src, pkt[10], pkt[11], data[0], data[1], data[2], data[5:])


class BxParser:
    """Incremental: A5... preamble, escaped body, 5A tail."""

    MAX = 65536

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[BxPacket | Exception]:
        self._buf += data
        out: list[BxPacket | Exception] = []
        while True:
            start = self._buf.find(0xA5)
            if start < 0:
                self._buf.clear()
                break
            i = start
            while i < len(self._buf) and self._buf[i] == 0xA5:
                i += 1
            end = self._buf.find(TAIL, i)
            if end < 0:
                del self._buf[:start]
                if len(self._buf) > self.MAX:
                    self._buf.clear()
                    out.append(ValueError("frame too long"))
                break
            body = bytes(self._buf[i:end])
            del self._buf[: end + 1]
            try:
                out.append(parse_packet(body))
            except ValueError as exc:
                out.append(exc)
        return out


def read_frame(ser: serial.SerialBase) -> bytes:
    """Read one reply frame (up to the tail byte) or b'' on timeout."""
    buf = bytearray()
    while True:
        b = ser.read(1)
        if not b:
            return bytes(buf) if buf and buf[-1] == TAIL else b""
        buf += b
        if b[0] == TAIL and len(buf) > 9:
            return bytes(buf)


# -- the driver ---------------------------------------------------------------------------------------
class Bx5kController(LedController):
    """A BX-5K/6K controller over RS-232/485; text in one full-screen dynamic area."""

    protocol = "bx5k"
    can_draw_pixels = False

    def __init__(self, url: str, *, baudrate: int = 57600, timeout: float = 1.0, width: int = 128,
                 height: int = 32, retries: int = 1) -> None:
        self.port = SerialPort(url, baudrate=baudrate, timeout=timeout)
        self.width, self.height = width, height
        self.retries = retries

    async def _call(self, raw: bytes) -> BxPacket:
        last = "no reply"
        for _ in range(self.retries + 1):
            reply = await self.port.exchange(raw, read_frame)
            if not reply:
                last = "no reply"
                continue
            got = BxParser().feed(reply)
            pkt = got[0] if got else ValueError("no frame")
            if isinstance(pkt, Exception):
                last = f"bad reply ({pkt})"
                continue
            if pkt.payload[:1] not in (b"", b"\x00"):
                last = f"error code {pkt.payload[0]}"
                continue
            return pkt
        raise LedError(f"bx5k controller: {last}")

    async def open(self) -> None:
        await self._call(ping())

    async def close(self) -> None:
        await self.port.close()

    async def show(self, content: BoardContent) -> str:
        shown = to_board_ascii(content.text).text
        area = DynamicArea(width=self.width, height=self.height, text=shown.encode("ascii"),
                           effect=EFFECTS.get(content.mode, 0x01), speed=max(0, 5 - content.speed))
        await self._call(dynamic_areas([area], delete_all=True))
        return shown

    async def clear(self) -> None:
        await self._call(clear())

    async def set_brightness(self, percent: int) -> None:
        raise NotImplementedError("brightness over the BX-5K serial protocol: see docs/led.md")

    async def ping(self) -> BoardStatus:
        pkt = await self._call(read_status())
        temp = None
        if len(pkt.payload) >= 4:
            temp = struct.unpack_from("<b", pkt.payload, 3)[0]
        return BoardStatus(True, temp, {"status": pkt.payload.hex(), "ts": time.time()})
