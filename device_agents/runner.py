"""Wire an agent to its hardware: real (ALSA + RS-485) or the firmware simulator.

This is the only place that knows which one a station has.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from device_agents.common.config import AgentConfig
from device_agents.hardware.amplifier import Amplifier, ModbusAmplifier, ModbusBusConfig, NoAmplifier
from device_agents.hardware.audio import AlsaAudioOutput, AudioOutput
from device_agents.speaker.agent import SpeakerAgent

log = logging.getLogger(__name__)


@dataclass
class RunningStation:
    """An agent and, when simulated, the firmware it talks to (for tests and the demo)."""

    agent: SpeakerAgent
    hardware: object | None = None  # firmware_sim.station.SimStationHardware when simulated
    extra: list[object] = field(default_factory=list)

    async def stop(self) -> None:
        await self.agent.stop()
        if self.hardware is not None:
            with contextlib.suppress(Exception):
                await self.hardware.close()  # type: ignore[attr-defined]


def _amplifier(config: AgentConfig, url: str | None) -> Amplifier:
    if not url:
        return NoAmplifier()
    return ModbusAmplifier(ModbusBusConfig(url=url, baudrate=config.modbus_baudrate))


async def start_station(
    config: AgentConfig, *, simulated: bool, sim_transport: str = "pty"
) -> RunningStation:
    if config.kind == "led":
        from device_agents.led.runner import start_led_board

        return await start_led_board(config, simulated=simulated, sim_transport=sim_transport)  # type: ignore[return-value]
    if config.kind != "speaker":
        raise ValueError(f"no agent for station kind {config.kind!r} yet")
    if simulated:
        from firmware_sim.station import SimStationHardware

        hw = SimStationHardware(transport=sim_transport, state_dir=config.data_dir / "sim")  # type: ignore[arg-type]
        await hw.start()
        audio: AudioOutput = hw.sink
        amp = _amplifier(config, hw.modbus_url)
        agent = SpeakerAgent(config, audio, amp, clock=hw.clock)  # clock: drift fault (docs/health.md)
        await agent.start()
        return RunningStation(agent, hw)
    agent = SpeakerAgent(config, AlsaAudioOutput(config.audio_device), _amplifier(config, config.modbus_url))
    await agent.start()
    return RunningStation(agent)


async def run_agent(config_path: Path, *, simulated: bool) -> int:
    """Run until stopped; returns the exit code (75 = restart me, asked by a signed
    `restart_agent` diagnostic or an applied update; docs/operations.md)."""
    config = AgentConfig.load(config_path)
    station = await start_station(config, simulated=simulated)
    log.info("agent %s running (%s hardware)", config.uid, "simulated" if simulated else "real")
    try:
        await station.agent.diagnostics.restart_requested.wait()
    finally:
        await station.stop()
    return station.agent.diagnostics.exit_code or 0
