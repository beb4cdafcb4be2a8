"""Put a simulated byte device on a real serial line the agent can open with pyserial.

- ``PtyLine``: a pseudo-terminal; the agent opens ``.path`` (/dev/pts/N) exactly as it
  would open /dev/ttyUSB0 on a Pi with a USB-RS485 adapter.
- ``TcpSerialLine``: a TCP port; the agent opens ``socket://host:port`` (pyserial's
  URL handler), as with an RS-485-to-Ethernet converter.

Line faults live here because they are properties of the wire: ``no_reply`` drops
every reply, ``garble`` flips bits in them, ``garble_requests`` in what the device gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Callable
from typing import Protocol

from firmware_sim.faults import Faults

log = logging.getLogger(__name__)


class ByteHandler(Protocol):
    """A device on the line: gets bytes as they arrive, answers through ``reply``."""

    def feed(self, data: bytes, reply: Callable[[bytes], None]) -> None: ...


def garble_bytes(data: bytes) -> bytes:
    """Corrupt a reply the way line noise does: a flipped bit mid-frame and a bad CRC."""
    if not data:
        return data
    out = bytearray(data)
    out[len(out) // 2] ^= 0x10
    out[-1] ^= 0x5A
    return bytes(out)


class _Line:
    """Shared fault handling for both line types."""

    def __init__(self, handler: ByteHandler, faults: Faults | None) -> None:
        self.handler = handler
        self.faults = faults if faults is not None else Faults()
        self.bytes_in = 0
        self.bytes_out = 0
        self.dropped_replies = 0
        self.garbled_replies = 0
        self.garbled_requests = 0  # chunks of bytes corrupted on their way to the device

    def _incoming(self, data: bytes) -> bytes:
        if self.faults.garble_requests and data:
            self.garbled_requests += 1
            return garble_bytes(data)
        return data

    def _outgoing(self, data: bytes) -> bytes | None:
        if self.faults.no_reply:
            self.dropped_replies += 1
            return None
        if self.faults.garble:
            self.garbled_replies += 1
            return garble_bytes(data)
        return data


class PtyLine(_Line):
    """A pty pair: the simulator owns the master side, the agent opens ``path``."""

    def __init__(self, handler: ByteHandler, faults: Faults | None = None) -> None:
        super().__init__(handler, faults)
        self._master: int | None = None
        self._slave: int | None = None
        self._path: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def path(self) -> str:
        """Device path to give pyserial (only valid after start())."""
        if self._path is None:
            raise RuntimeError("PtyLine not started")
        return self._path

    @property
    def url(self) -> str:
        """Same as ``path``; pyserial accepts plain device paths as URLs."""
        return self.path

    async def start(self) -> None:
        """Create the pty and start serving bytes from its master side."""
        if self._master is not None:
            return
        master, slave = os.openpty()
        # Raw: no echo, no line editing, no CR/LF translation - binary as a UART is.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        # Keeping our slave fd open means the master never sees EIO (hang-up)
        # while the agent closes and reopens the port.
        self._path = os.ttyname(slave)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._on_readable)
        log.info("pty serial line at %s", self._path)

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("pty read failed: %s", exc)
            return
        if data:
            self.bytes_in += len(data)
            self.handler.feed(self._incoming(data), self._reply)

    def _reply(self, data: bytes) -> None:
        out = self._outgoing(data)
        if out is None or self._master is None:
            return
        try:
            written = os.write(self._master, out)
        except BlockingIOError:
            log.warning("pty full (nobody reading %s): reply dropped", self._path)
            return
        self.bytes_out += written

    async def close(self) -> None:
        """Stop serving and release the pty."""
        master, slave = self._master, self._slave
        self._master = self._slave = None
        if master is not None:
            if self._loop is not None:
                self._loop.remove_reader(master)
            os.close(master)
        if slave is not None:
            os.close(slave)


class TcpSerialLine(_Line):
    """A TCP server carrying the raw serial byte stream (one bus master at a time).

    A new connection replaces the old one, as when a serial port is reopened; this
    way an agent that died without closing its socket cannot lock the bus out.
    """

    def __init__(
        self,
        handler: ByteHandler,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(handler, faults)
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("TcpSerialLine not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """pyserial URL, e.g. socket://127.0.0.1:40123."""
        return f"socket://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen for the bus master."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self._port)
            log.info("tcp serial line at %s", self.url)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        previous, self._writer = self._writer, writer
        self.connections += 1
        if previous is not None:
            previous.close()

        def reply(data: bytes) -> None:
            out = self._outgoing(data)
            if out is None or writer.is_closing():
                return
            writer.write(out)
            self.bytes_out += len(out)

        try:
            while data := await reader.read(4096):
                self.bytes_in += len(data)
                self.handler.feed(self._incoming(data), reply)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        """Drop the client and stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
