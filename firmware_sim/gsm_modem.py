"""A GSM modem at the byte level (the SMS side of a SIM800 / SIM7600 / USB 3G stick).

Put it on a `serial_line.PtyLine` and the controller's `AtModemSms` opens the pty exactly as it
opens /dev/ttyUSB2. It speaks the text-mode subset the controller uses: AT, ATE0/ATE1,
AT+CMGF, AT+CSCS ("GSM"/"UCS2"), AT+CSMP, AT+CMGS="<number>" -> "> " -> text, Ctrl-Z (send)
or Esc (cancel). Each SMS "sent" is recorded with the number and the text decoded from UCS2,
so tests read what the phone would show.

Faults: `fail_next` answers that many sends with `+CMS ERROR: 500`; `fail_always` every one.
A text longer than one SMS (70 UCS2 characters) is refused with `+CMS ERROR: 305` as a real
modem does in text mode.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

log = logging.getLogger(__name__)

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"


@dataclass(frozen=True)
class SentSms:
    number: str
    text: str
    reference: int
    at: datetime


@dataclass
class GsmModemSim:
    """The modem's state: settings from AT commands, the SMS it sent, injected faults."""

    fail_next: int = 0
    fail_always: bool = False
    sent: list[SentSms] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # every command line, in order
    refused: int = 0
    _echo: bool = True
    _text_mode: bool = False
    _charset: str = "GSM"
    _dcs: int = 0
    _buf: bytes = b""
    _entry_for: str | None = None  # the number while in text entry ("> ")
    _next_ref: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, data: bytes, reply: Callable[[bytes], None]) -> None:
        with self._lock:
            self._buf += data
            while self._buf:
                if self._entry_for is not None:
                    if not self._take_text(reply):
                        return
                    continue
                end = self._buf.find(b"\r")
                if end < 0:
                    return
                line, self._buf = self._buf[:end], self._buf[end + 1 :].lstrip(b"\n")
                if self._echo:
                    reply(line + b"\r")
                self._command(line.decode("ascii", "replace").strip(), reply)

    def texts_to(self, number: str) -> list[str]:
        return [s.text for s in self.sent if s.number == number]

    # -- text entry -------------------------------------------------------------------------------
    def _take_text(self, reply: Callable[[bytes], None]) -> bool:
        cut = min((i for i in (self._buf.find(b"\x1a"), self._buf.find(b"\x1b")) if i >= 0), default=-1)
        if cut < 0:
            return False
        body, end, self._buf = self._buf[:cut], self._buf[cut : cut + 1], self._buf[cut + 1 :]
        number, self._entry_for = self._entry_for or "", None
        if end == b"\x1b":
            reply(OK)
            return True
        if self.fail_always or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            self.refused += 1
            reply(b"\r\n+CMS ERROR: 500\r\n")
            return True
        try:
            text = self._decode(body.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            self.refused += 1
            reply(b"\r\n+CMS ERROR: 304\r\n")  # invalid PDU/text parameter
            return True
        if len(text.encode("utf-16-be")) > 140:
            self.refused += 1
            reply(b"\r\n+CMS ERROR: 305\r\n")
            return True
        ref, self._next_ref = self._next_ref, self._next_ref % 255 + 1
        self.sent.append(SentSms(number, text, ref, datetime.now(UTC)))
        log.info("simulated modem sent an SMS to %s: %s", number, text)
        reply(f"\r\n+CMGS: {ref}\r\n".encode() + OK)
        return True

    def _decode(self, data: str) -> str:
        if self._charset == "UCS2":
            return bytes.fromhex(data).decode("utf-16-be")
        return data

    # -- commands ---------------------------------------------------------------------------------
    def _command(self, line: str, reply: Callable[[bytes], None]) -> None:
        if not line:
            return
        self.commands.append(line)
        upper = line.upper()
        if upper in ("AT", "AT+CMGF?"):
            reply(OK)
        elif upper in ("ATE0", "ATE1"):
            self._echo = upper == "ATE1"
            reply(OK)
        elif upper.startswith("AT+CMGF="):
            self._text_mode = upper.endswith("=1")
            reply(OK)
        elif upper.startswith("AT+CSCS="):
            charset = line.split("=", 1)[1].strip().strip('"').upper()
            if charset not in ("GSM", "UCS2", "IRA"):
                reply(ERROR)
                return
            self._charset = charset
            reply(OK)
        elif upper.startswith("AT+CSMP="):
            parts = line.split("=", 1)[1].split(",")
            self._dcs = int(parts[3]) if len(parts) == 4 and parts[3].strip().isdigit() else self._dcs
            reply(OK)
        elif upper.startswith("AT+CMGS="):
            self._start_entry(line, reply)
        else:
            reply(ERROR)

    def _start_entry(self, line: str, reply: Callable[[bytes], None]) -> None:
        if not self._text_mode:
            reply(b"\r\n+CMS ERROR: 302\r\n")  # operation not allowed (PDU mode)
            return
        raw = line.split("=", 1)[1].strip().strip('"')
        try:
            number = self._decode(raw)
        except (UnicodeDecodeError, ValueError):
            reply(b"\r\n+CMS ERROR: 304\r\n")
            return
        if self._charset == "UCS2" and self._dcs != 8:
            reply(b"\r\n+CMS ERROR: 304\r\n")  # UCS2 text needs dcs 8 (AT+CSMP)
            return
        self._entry_for = number
        reply(b"\r\n> ")
