"""The seam between the LED agent and a board's controller.

The agent only sees ``LedController``; ``device_agents/runner.py`` picks the real one
(pyserial on /dev/ttyUSB0, an RS-485/Ethernet converter's ``socket://`` URL, a HUB75
panel) or the same driver talking to ``firmware_sim.led`` over a pty or TCP line.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import serial


class LedError(Exception):
    """The board did not answer, answered NAK, or the line is gone."""


@dataclass(frozen=True)
class BoardContent:
    """What one board should show now (the agent's choice among its messages)."""

    text: str
    mode: str = "hold"  # hold | scroll | flash | rotate
    color: str = "amber"
    speed: int = 3  # 1 (slow) .. 5 (fast)
    priority: str = "normal"
    item_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["item_ids"] = list(self.item_ids)
        return d


@dataclass
class BoardStatus:
    reachable: bool
    temperature_c: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class LedController(ABC):
    """One board controller. Every call either completes (board acknowledged) or raises LedError."""

    protocol: str = "?"
    can_draw_pixels: bool = False  # True: full Vietnamese; False: text path, transliterated

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def show(self, content: BoardContent) -> str:
        """Put content on the board; return the text as the board will really show it."""

    @abstractmethod
    async def clear(self) -> None: ...

    @abstractmethod
    async def set_brightness(self, percent: int) -> None: ...

    @abstractmethod
    async def ping(self) -> BoardStatus: ...


class SerialPort:
    """A pyserial port used from asyncio: one request at a time, reopened after errors."""

    def __init__(self, url: str, *, baudrate: int = 9600, timeout: float = 1.0, **kw: Any) -> None:
        self.url = url
        self.baudrate = baudrate
        self.timeout = timeout
        self._kw = kw
        self._ser: serial.SerialBase | None = None
        self._lock = threading.Lock()
        self._alock = asyncio.Lock()

    def _ensure(self) -> serial.SerialBase:
        if self._ser is None:
            try:
                self._ser = serial.serial_for_url(
                    self.url, baudrate=self.baudrate, timeout=self.timeout, **self._kw
                )
            except (serial.SerialException, OSError) as exc:
                raise LedError(f"cannot open {self.url}: {exc}") from exc
        return self._ser

    def _drop(self) -> None:
        if self._ser is not None:
            with contextlib.suppress(Exception):
                self._ser.close()
        self._ser = None

    def _exchange(self, frame: bytes, reader: Any) -> bytes:
        with self._lock:
            ser = self._ensure()
            try:
                ser.reset_input_buffer()
                ser.write(frame)
                ser.flush()
                return reader(ser) if reader is not None else b""
            except (serial.SerialException, OSError) as exc:
                self._drop()
                raise LedError(f"serial line {self.url}: {exc}") from exc

    async def exchange(self, frame: bytes, reader: Any = None) -> bytes:
        """Write a frame and (optionally) read the reply with ``reader(ser)`` in a worker thread."""
        async with self._alock:
            return await asyncio.to_thread(self._exchange, frame, reader)

    async def close(self) -> None:
        async with self._alock:
            await asyncio.to_thread(self._drop)
