"""Wire a station host to its hardware: the real devices, or simulated ones handed in.

This is the only place that picks the real hardware (ALSA, the RS-485 relay board, the LED
controller's serial line). Simulated hardware is made outside the agent package (firmware_sim
and communecast) and handed in as a `Bench`; the roles never know which they have.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from device_agents.common.clock import Clock
from device_agents.common.config import AgentConfig
from device_agents.hardware.amplifier import Amplifier, ModbusAmplifier, ModbusBusConfig, NoAmplifier
from device_agents.hardware.audio import AlsaAudioOutput, AudioOutput
from device_agents.hardware.decode import log_decoder_note
from device_agents.host.host import StationHost
from device_agents.led.driver import LedController
from device_agents.led.role import led_station
from device_agents.speaker.role import speaker_station

log = logging.getLogger(__name__)

class Closable(Protocol):
    async def close(self) -> None: ...


@dataclass
class Bench:
    """Simulated hardware made outside the agent package: the far ends of the station's lines.

    The agent's own drivers talk to them as to real devices (Modbus over `modbus_url`, the LED
    protocol over `led_url`); only the audio output and the clock are replaced outright."""

    audio: AudioOutput | None = None  # instead of ALSA
    clock: Clock | None = None  # the station's wall clock (a drift fault, docs/health.md)
    modbus_url: str | None = None  # instead of config.modbus_url
    led_url: str | None = None  # instead of config.led_url (for a bitmap panel: the PNG it writes)
    hardware: Closable | None = None  # closed after the agent; tests reach its faults and sinks


@dataclass
class RunningStation:
    """A station host and, when simulated, the firmware it talks to (for tests and the demo)."""

    agent: StationHost[Any]
    hardware: Any = None  # Bench.hardware, e.g. firmware_sim.station.SimStationHardware
    extra: list[object] = field(default_factory=list)

    async def stop(self) -> None:
        await self.agent.stop()
        if self.hardware is not None:
            with contextlib.suppress(Exception):
                await self.hardware.close()


def check_kind(config: AgentConfig) -> None:
    if config.kind not in HOSTS:
        raise ValueError(f"no agent for station kind {config.kind!r} yet")


def _amplifier(config: AgentConfig, url: str | None) -> Amplifier:
    if not url:
        return NoAmplifier()
    return ModbusAmplifier(ModbusBusConfig(url=url, baudrate=config.modbus_baudrate))


def controller_for(config: AgentConfig, url: str) -> LedController:
    """The LED controller driver for `config`, on the line `url` (for a bitmap panel: the PNG it writes)."""
    if config.led_protocol == "alpha":
        from device_agents.led.alpha import AlphaController

        return AlphaController(url, baudrate=config.led_baudrate)
    if config.led_protocol == "bx5k":
        from device_agents.led.bx5k import Bx5kController

        return Bx5kController(url, baudrate=config.led_baudrate, width=config.led_width,
                              height=config.led_height)
    from device_agents.led.bitmap import BitmapPanel

    target = Path(url)

    def sink(img: object) -> None:  # a panel daemon (e.g. a HUB75 driver) picks the frame up here
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        img.save(tmp, format="PNG")  # type: ignore[attr-defined]
        tmp.replace(target)

    return BitmapPanel(sink, width=config.led_width, height=config.led_height)


def _speaker(config: AgentConfig, bench: Bench | None) -> StationHost[Any]:
    log_decoder_note()
    if bench is not None:
        audio = bench.audio or AlsaAudioOutput(config.audio_device)
        return speaker_station(config, audio, _amplifier(config, bench.modbus_url), clock=bench.clock)
    amp = _amplifier(config, config.modbus_url)
    return speaker_station(config, AlsaAudioOutput(config.audio_device), amp)


def _led(config: AgentConfig, bench: Bench | None) -> StationHost[Any]:
    url = bench.led_url if bench is not None else config.led_url
    if not url:
        raise ValueError("led_url is needed: the board controller's serial port or socket:// URL")
    return led_station(config, controller_for(config, url))


# A station kind: its role module plus one line here that picks its hardware.
HOSTS: dict[str, Callable[[AgentConfig, Bench | None], StationHost[Any]]] = {"speaker": _speaker, "led": _led}


async def start_station(config: AgentConfig, *, bench: Bench | None = None) -> RunningStation:
    """Start the station `config` describes: on its real hardware, or on `bench` when given."""
    check_kind(config)
    agent = HOSTS[config.kind](config, bench)
    await agent.start()
    return RunningStation(agent, bench.hardware if bench is not None else None)


async def run_agent(
    config_path: Path, *, simulate: Callable[[AgentConfig], Awaitable[Bench]] | None = None,
    on_started: Callable[[], None] | None = None,
) -> int:
    """Run until stopped; returns the exit code (75 = restart me, asked by a signed
    `restart_agent` diagnostic or an applied update; docs/operations.md). `simulate` makes
    the simulated hardware for the loaded config (firmware_sim.bench.open_bench);
    `on_started` is called once the station runs (the service manager's READY)."""
    config = AgentConfig.load(config_path)
    bench = await simulate(config) if simulate is not None else None
    station = await start_station(config, bench=bench)
    log.info("agent %s running (%s hardware)", config.uid, "simulated" if bench else "real")
    if on_started is not None:
        on_started()
    try:
        await station.agent.diagnostics.restart_requested.wait()
    finally:
        await station.stop()
    return station.agent.diagnostics.exit_code or 0
