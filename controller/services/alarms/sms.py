"""SMS through a GSM modem on a serial port: AT commands in text mode with UCS2 (Vietnamese).

The seam (docs/architecture.md): `SmsSender` is the interface; `AtModemSms` is the real
implementation (pyserial, any URL pyserial opens: /dev/ttyUSB2, socket://host:port). Tests run
the same `AtModemSms` against `firmware_sim.gsm_modem.GsmModemSim` on a real pty, byte for byte.

Why text mode with UCS2 and not PDU mode: every USB 3G/4G stick and SIM800/SIM7600 module speaks
it, and it carries Vietnamese diacritics (GSM 7-bit does not). UCS2 allows 70 characters per SMS.
Text mode cannot set the user-data header that joins parts into one long SMS, and separate parts
arrive out of order on many phones, so a longer text is *truncated* to 70 characters with "…":
the alarm texts are written to fit (controller/services/alarms/personal.py `sms_text`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import serial

log = logging.getLogger(__name__)

SMS_UCS2_MAX = 70  # UTF-16 code units in one UCS2 SMS (140 bytes)
CTRL_Z = b"\x1a"
ESC = b"\x1b"


class SmsFailed(Exception):
    """The modem would not send the SMS (after the retries): the reason the modem gave."""


class SmsSender(Protocol):
    name: str

    def send(self, number: str, text: str) -> int:
        """Send one SMS (blocking; call from a thread); the network's message reference."""
        ...


def ucs2_hex(text: str) -> str:
    """ "Xã" -> "005800E3": UTF-16BE as upper-case hex, what AT+CSCS="UCS2" expects."""
    return text.encode("utf-16-be").hex().upper()


def from_ucs2_hex(data: str) -> str:
    return bytes.fromhex(data).decode("utf-16-be")


def fit_sms(text: str, limit: int = SMS_UCS2_MAX) -> str:
    """One SMS worth of text: characters outside the BMP (emoji) become "?" (UCS2 has no
    surrogate pairs), whitespace runs collapse, and a longer text is cut with "…"."""
    clean = " ".join("".join(c if ord(c) <= 0xFFFF else "?" for c in text).split())
    return clean if len(clean) <= limit else clean[: limit - 1].rstrip() + "…"


class AtModemSms:
    """A GSM modem in text mode. One SMS at a time (a lock): the line is a single conversation.

    Each send opens the port, sets the modem up (AT, ATE0, AT+CMGF=1, AT+CSCS="UCS2",
    AT+CSMP=17,167,0,8) and sends; opening per send keeps a modem that was unplugged and
    re-plugged (or rebooted) usable without a restart of the controller. ERROR, +CMS ERROR and
    silence are retried `attempts` times with a doubling pause, then raised as `SmsFailed`."""

    def __init__(
        self, url: str, *, baudrate: int = 115200, timeout_s: float = 5.0, send_timeout_s: float = 60.0,
        attempts: int = 3, backoff_s: float = 1.0,
    ) -> None:
        self.url = url
        self.name = f"sms:{url}"
        self._baudrate = baudrate
        self._timeout = timeout_s
        self._send_timeout = send_timeout_s  # +CMGS can take tens of seconds on a weak network
        self._attempts = attempts
        self._backoff = backoff_s
        self._lock = threading.Lock()

    def send(self, number: str, text: str) -> int:
        body = fit_sms(text)
        delay = self._backoff
        last = "no attempt"
        with self._lock:
            for attempt in range(1, self._attempts + 1):
                try:
                    with serial.serial_for_url(self.url, baudrate=self._baudrate, timeout=0.1) as port:
                        return self._send_once(port, number, body)
                except (SmsFailed, serial.SerialException, OSError) as exc:
                    last = str(exc)
                    if attempt == self._attempts:
                        break
                    log.info("%s: SMS to %s failed (%s); retry %d/%d in %.1f s", self.name, number, last,
                             attempt, self._attempts - 1, delay)  # fmt: skip
                    time.sleep(delay)
                    delay *= 2
        log.warning("%s: giving up on the SMS to %s after %d attempts: %s", self.name, number,
                    self._attempts, last)  # fmt: skip
        raise SmsFailed(f"{self.name}: SMS to {number} not sent after {self._attempts} attempts: {last}")

    def _send_once(self, port: serial.SerialBase, number: str, body: str) -> int:
        port.reset_input_buffer()
        for command in ("AT", "ATE0", "AT+CMGF=1", 'AT+CSCS="UCS2"', "AT+CSMP=17,167,0,8"):
            self._command(port, command)
        port.write(f'AT+CMGS="{ucs2_hex(number)}"\r'.encode())
        got = self._read_until(port, (b"> ",), self._timeout)
        if not got.endswith(b"> "):
            port.write(ESC)  # leave text entry if the prompt came late
            raise SmsFailed(f"no '> ' prompt after AT+CMGS: {_show(got)}")
        port.write(ucs2_hex(body).encode() + CTRL_Z)
        reply = self._read_until(port, (b"\r\nOK\r\n",), self._send_timeout)
        lines = _lines(reply)
        error = next((ln for ln in lines if ln == "ERROR" or ln.startswith("+CMS ERROR")), None)
        if error is not None:
            raise SmsFailed(f"the modem answered {error}")
        ref = next((ln for ln in lines if ln.startswith("+CMGS:")), None)
        if ref is None or "OK" not in lines:
            raise SmsFailed(f"no +CMGS/OK after the text: {_show(reply)}")
        return int(ref.split(":", 1)[1].strip() or 0)

    def _command(self, port: serial.SerialBase, command: str) -> None:
        port.write(command.encode() + b"\r")
        reply = self._read_until(port, (b"\r\nOK\r\n",), self._timeout)
        lines = _lines(reply)
        if "OK" not in lines:
            raise SmsFailed(f"{command} answered {_show(reply) or 'nothing'}")

    @staticmethod
    def _read_until(port: serial.SerialBase, ends: tuple[bytes, ...], timeout: float) -> bytes:
        """Bytes until one of `ends`, an ERROR line, or the deadline (whatever came)."""
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            buf += port.read(port.in_waiting or 1)
            if any(buf.endswith(e) for e in ends) or _has_error(buf):
                break
        return buf


def _has_error(buf: bytes) -> bool:
    return buf.endswith(b"ERROR\r\n") or (b"+CMS ERROR" in buf and buf.endswith(b"\r\n"))


def _lines(data: bytes) -> list[str]:
    return [ln.strip() for ln in data.decode("ascii", "replace").split("\r\n") if ln.strip()]


def _show(data: bytes) -> str:
    return data.decode("ascii", "replace").replace("\r", "\\r").replace("\n", "\\n")
