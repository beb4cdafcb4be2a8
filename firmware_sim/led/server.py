"""`communecast sim led`: one simulated LED controller behind a TCP serial line.

The agent opens it with a pyserial URL ``socket://HOST:PORT``, as it would an RS-232/485
to Ethernet converter. state.json and current.png in the state dir show what it displays.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from firmware_sim.led.board import LedBoardSim, make_board
from firmware_sim.serial_line import TcpSerialLine

log = logging.getLogger(__name__)


class SimLedBoard:
    """A board simulator plus its line (pty for tests and the demo, or TCP)."""

    def __init__(self, protocol: str, state_dir: Path | None, *, transport: str = "tcp",
                 host: str = "127.0.0.1", port: int = 0, width: int = 128, height: int = 32) -> None:
        self.board: LedBoardSim = make_board(protocol, state_dir, width=width, height=height)
        if transport == "pty":
            from firmware_sim.serial_line import PtyLine

            self.line: TcpSerialLine | PtyLine = PtyLine(self.board, self.board.faults)
        else:
            self.line = TcpSerialLine(self.board, host, port, self.board.faults)

    @property
    def url(self) -> str:
        return self.line.url

    async def start(self) -> None:
        await self.line.start()

    async def close(self) -> None:
        await self.line.close()


async def serve(protocol: str, host: str, port: int, state_dir: Path) -> None:
    sim = SimLedBoard(protocol, state_dir, host=host, port=port)
    await sim.start()
    print(f"LED {protocol} simulator on {sim.url} (state in {state_dir})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.close()
