"""One simulated station's hardware: amplifier cabinet on a serial line + speaker sink.

An agent under test gets ``modbus_url`` (for ModbusBusConfig) and ``sink`` (as its
AudioOutput); the cabinet sees the sink's state, so switching the amplifier on and
playing audio shows up as current on the meter, just as on a real station.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Literal

from firmware_sim.audio_sink import SimAudioSink
from firmware_sim.faults import DriftingClock, Faults
from firmware_sim.relay_board import AmplifierCabinet
from firmware_sim.serial_line import PtyLine, TcpSerialLine

Transport = Literal["pty", "tcp"]


class SimStationHardware:
    """Cabinet + line + sink sharing one ``Faults`` object."""

    def __init__(
        self,
        *,
        transport: Transport = "pty",
        state_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        self.faults = faults if faults is not None else Faults()
        self.sink = SimAudioSink(state_dir=state_dir)
        # The station's wall clock for its agent: `clock_drift` shifts it (docs/health.md).
        self.clock = DriftingClock(self.faults)
        self.cabinet = AmplifierCabinet(self.faults)
        self.cabinet.audio_state = lambda: (self.sink.playing, self.sink.volume)
        self.line: PtyLine | TcpSerialLine
        if transport == "pty":
            self.line = PtyLine(self.cabinet, self.faults)
        elif transport == "tcp":
            self.line = TcpSerialLine(self.cabinet, host, port, self.faults)
        else:
            raise ValueError(f"transport must be 'pty' or 'tcp', not {transport!r}")
        self.transport: Transport = transport

    @property
    def modbus_url(self) -> str:
        """What the agent's ModbusBusConfig.url should be (pty path or socket:// URL)."""
        return self.line.url

    async def start(self) -> None:
        """Open the serial line."""
        await self.line.start()

    async def close(self) -> None:
        """Stop any playback and release the line."""
        await self.sink.stop()
        await self.line.close()

    async def __aenter__(self) -> SimStationHardware:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
