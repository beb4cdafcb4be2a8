"""Alpha Sign Communications Protocol (Adaptive Micro Systems), written from the protocol
document's framing rules. Frames are bytes; ``AlphaController`` puts them on a pyserial line.

Transmission packet::

    NUL x5 | SOH | type code | address (2 ASCII hex) |
      ( STX | command code | data | ETX | checksum (4 ASCII hex) )...  | EOT

The checksum is the 16-bit sum of every byte from STX to ETX inclusive, as four upper-case
ASCII hex digits. Which frames were checked against what: docs/led.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import serial

from device_agents.led.driver import BoardContent, BoardStatus, LedController, LedError, SerialPort
from device_agents.led.text import to_board_ascii

NUL, SOH, STX, ETX, EOT, ESC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x1B
ACK, NAK = 0x06, 0x15
SYNC = bytes(5)
ALL_SIGNS = b"Z"
BROADCAST = b"00"
PRIORITY_LABEL = "0"  # the priority TEXT file: overrides every other file while it has text

WRITE_TEXT, READ_TEXT, WRITE_SPECIAL, READ_SPECIAL = b"A", b"B", b"E", b"F"

# Section 7.10 display positions and 7.11 modes of the protocol document.
POSITIONS = {"middle": 0x20, "top": 0x22, "bottom": 0x26, "fill": 0x30, "left": 0x31, "right": 0x32}
MODES = {
    "rotate": b"a", "hold": b"b", "flash": b"c", "roll_up": b"e", "roll_down": b"f",
    "roll_left": b"g", "roll_right": b"h", "wipe_up": b"i", "wipe_down": b"j", "wipe_left": b"k",
    "wipe_right": b"l", "scroll": b"m", "automode": b"o", "roll_in": b"p", "roll_out": b"q",
    "wipe_in": b"r", "wipe_out": b"s", "compressed_rotate": b"t",
}  # fmt: skip
MODE_NAMES = {v[0]: k for k, v in MODES.items()}
COLORS = {"red": b"\x1c1", "green": b"\x1c2", "amber": b"\x1c3", "dim_red": b"\x1c4",
          "dim_green": b"\x1c5", "brown": b"\x1c6", "orange": b"\x1c7", "yellow": b"\x1c8"}
COLOR_NAMES = {v[1]: k for k, v in COLORS.items()}
SPEEDS = {1: b"\x15", 2: b"\x16", 3: b"\x17", 4: b"\x18", 5: b"\x19"}  # speed 1 (slowest) .. 5

# Special functions (command E) we use.
SF_TIME = b" "  # 20H set time of day, HHMM 24h
SF_MEMORY = b"$"  # 24H memory configuration; "$$$" clears it
SF_DIMMING = b"/"  # 2FH dimming register
SF_ACK_NAK = b"s"  # ACK/NAK responses on/off
DIM_LEVELS = (100, 86, 72, 58, 44)  # the five brightness steps of the dimming register


def checksum(body: bytes) -> bytes:
    """Four ASCII hex digits of the 16-bit sum of STX..ETX."""
    return f"{sum(body) & 0xFFFF:04X}".encode()


def packet(*commands: tuple[bytes, bytes], type_code: bytes = ALL_SIGNS, address: bytes = BROADCAST,
           with_checksum: bool = True) -> bytes:
    """Frame one or more (command code, data) pairs into one transmission packet."""
    out = bytearray(SYNC + bytes([SOH]) + type_code + address)
    for code, data in commands:
        body = bytes([STX]) + code + data
        if with_checksum or len(commands) > 1:
            body += bytes([ETX])
            out += body + (checksum(body) if with_checksum else b"")
        else:
            out += body
    out.append(EOT)
    return bytes(out)


def _label(label: str) -> bytes:
    if len(label) != 1 or not (0x20 <= ord(label) <= 0x7E) or label == "?":
        raise ValueError(f"bad TEXT file label {label!r}")
    return label.encode()


def text_data(text: bytes, *, label: str = "A", mode: str = "hold", position: str = "middle") -> bytes:
    """The data field of Write TEXT: label, ESC, position, mode, the message."""
    return _label(label) + bytes([ESC, POSITIONS[position]]) + MODES[mode] + text


def write_text(text: bytes, *, label: str = "A", mode: str = "hold", position: str = "middle",
               **kw: object) -> bytes:
    return packet((WRITE_TEXT, text_data(text, label=label, mode=mode, position=position)), **kw)  # type: ignore[arg-type]


def set_time(hours: int, minutes: int) -> bytes:
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValueError("time out of range")
    return packet((WRITE_SPECIAL, SF_TIME + f"{hours:02d}{minutes:02d}".encode()))


def memory_config(files: list[tuple[str, int]]) -> bytes:
    """Allocate TEXT files: (label, size in bytes), unlocked, run time FFFF (always)."""
    data = SF_MEMORY
    for label, size in files:
        data += _label(label) + b"AU" + f"{size:04X}".encode() + b"FFFF"
    return packet((WRITE_SPECIAL, data))


def clear_memory() -> bytes:
    """An empty memory configuration frees every file (implementations differ: docs/led.md)."""
    return packet((WRITE_SPECIAL, SF_MEMORY))


def ack_nak(enabled: bool) -> bytes:
    return packet((WRITE_SPECIAL, SF_ACK_NAK + (b"1" if enabled else b"0")))


def dimming(percent: int, *, dim_mode: int = 0) -> bytes:
    level = min(range(len(DIM_LEVELS)), key=lambda i: abs(DIM_LEVELS[i] - percent))
    return packet((WRITE_SPECIAL, SF_DIMMING + f"{dim_mode:02X}{level:02d}".encode()))


def message_bytes(text: str, *, color: str = "amber", speed: int = 3) -> tuple[bytes, str]:
    """Vietnamese text -> the bytes of an Alpha message and exactly what the board will show."""
    shown = to_board_ascii(text).text
    return COLORS.get(color, COLORS["amber"]) + SPEEDS.get(speed, SPEEDS[3]) + shown.encode("ascii"), shown


# -- parsing (the simulator's side, and anyone checking frames) --------------------------------
@dataclass
class AlphaCommand:
    code: bytes
    data: bytes
    checksum_ok: bool | None  # None: sent without checksum


@dataclass
class AlphaPacket:
    type_code: bytes
    address: bytes
    commands: list[AlphaCommand] = field(default_factory=list)


class AlphaParser:
    """Incremental parser: bytes in, packets out; a bad checksum marks the command, never drops sync."""

    MAX = 16384

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[AlphaPacket | Exception]:
        self._buf += data
        out: list[AlphaPacket | Exception] = []
        while True:
            soh = self._buf.find(SOH)
            if soh < 0:
                self._buf.clear()
                break
            eot = self._buf.find(EOT, soh)
            if eot < 0:
                del self._buf[:soh]
                if len(self._buf) > self.MAX:
                    self._buf.clear()
                    out.append(ValueError("packet too long"))
                break
            raw = bytes(self._buf[soh + 1 : eot])
            del self._buf[: eot + 1]
            try:
                out.append(parse_packet_body(raw))
            except ValueError as exc:
                out.append(exc)
        return out


def parse_packet_body(raw: bytes) -> AlphaPacket:
    """Parse what lies between SOH and EOT."""
    if len(raw) < 4 or raw[3] != STX:
        raise ValueError("no STX after type code and address")
    pkt = AlphaPacket(raw[0:1], raw[1:3])
    rest = raw[3:]
    while rest:
        if rest[0] != STX:
            raise ValueError("garbage between commands")
        etx = rest.find(ETX)
        nxt = rest.find(STX, 1)
        if etx < 0 or (0 <= nxt < etx):
            end = nxt if nxt >= 0 else len(rest)
            body = rest[1:end]
            if not body:
                raise ValueError("empty command")
            pkt.commands.append(AlphaCommand(body[0:1], body[1:], None))
            rest = rest[end:]
            continue
        body = rest[: etx + 1]
        given = rest[etx + 1 : etx + 5]
        if len(body) < 3:
            raise ValueError("empty command")
        has_sum = len(given) == 4 and all(chr(c) in "0123456789ABCDEF" for c in given)
        ok = (given == checksum(body)) if has_sum else None
        if not has_sum and given and given[0] != STX:
            ok = False  # something that should be a checksum and is not
        pkt.commands.append(AlphaCommand(body[1:2], body[2:-1], ok))
        rest = rest[etx + 1 + (4 if has_sum else 0) :]
        if not has_sum and rest and rest[0] != STX:
            raise ValueError("bad checksum field")
    return pkt


def _read_ack(ser: serial.SerialBase) -> bytes:
    first = ser.read(1)
    if not first:
        return b""
    status = ser.read(1)
    return first + status


# -- the driver ---------------------------------------------------------------------------------
class AlphaController(LedController):
    """An Alpha-protocol board (BetaBrite, Alpha 4120C, ...) on a serial line, ACK/NAK enabled."""

    protocol = "alpha"
    can_draw_pixels = False

    def __init__(self, url: str, *, baudrate: int = 9600, timeout: float = 1.0, retries: int = 1,
                 timezone: str = "Asia/Ho_Chi_Minh") -> None:
        self.port = SerialPort(url, baudrate=baudrate, timeout=timeout)
        self.timezone = timezone
        self.retries = retries
        self._priority_active = False

    async def _send(self, frame: bytes) -> None:
        last = "no reply"
        for _ in range(self.retries + 1):
            reply = await self.port.exchange(frame, _read_ack)
            if reply[:1] == bytes([ACK]):
                return
            if not reply:
                last = "no reply"
            else:
                last = "NAK" if reply[:1] == bytes([NAK]) else f"unexpected {reply!r}"
        raise LedError(f"alpha board: {last}")

    async def open(self) -> None:
        await self._send(ack_nak(True))
        await self._send(memory_config([("A", 1024)]))
        local = datetime.now(ZoneInfo(self.timezone))  # the board's clock shows local time
        await self._send(set_time(local.hour, local.minute))

    async def close(self) -> None:
        await self.port.close()

    async def show(self, content: BoardContent) -> str:
        data, shown = message_bytes(content.text, color=content.color, speed=content.speed)
        mode = content.mode if content.mode in MODES else "hold"
        if content.priority == "emergency":
            await self._send(write_text(data, label=PRIORITY_LABEL, mode=mode))
            self._priority_active = True
            return shown
        if self._priority_active:  # an empty priority file hands the board back to file A
            await self._send(write_text(b"", label=PRIORITY_LABEL, mode="hold"))
            self._priority_active = False
        await self._send(write_text(data, label="A", mode=mode))
        return shown

    async def clear(self) -> None:
        await self._send(write_text(b"", label="A"))

    async def set_brightness(self, percent: int) -> None:
        await self._send(dimming(percent))

    async def set_clock(self, hours: int, minutes: int) -> None:
        await self._send(set_time(hours, minutes))

    async def ping(self) -> BoardStatus:
        started = time.monotonic()
        await self._send(ack_nak(True))
        return BoardStatus(True, None, {"rtt_ms": round((time.monotonic() - started) * 1000, 1)})
