"""Simulated hardware for one station, handed to the agent's runner from outside.

The agent package never imports the simulator: this module makes the far ends of a
station's lines (a relay-board cabinet on a pty or TCP serial line and a recording audio
sink, or an LED controller simulator, or the PNG a bitmap panel would light up) and gives
them to `device_agents.runner.start_station` as a `Bench`.
"""

from __future__ import annotations

from typing import Literal

from device_agents.common.config import AgentConfig
from device_agents.runner import Bench, RunningStation, check_kind, start_station
from firmware_sim.led.server import SimLedBoard
from firmware_sim.station import SimStationHardware

Transport = Literal["pty", "tcp"]


async def open_bench(config: AgentConfig, *, transport: Transport = "pty") -> Bench:
    """Start the simulated hardware `config`'s station kind needs (state under data_dir/sim)."""
    check_kind(config)
    sim_dir = config.data_dir / "sim"
    if config.kind == "led":
        if config.led_protocol in ("alpha", "bx5k"):
            board = SimLedBoard(config.led_protocol, sim_dir, transport=transport,
                                width=config.led_width, height=config.led_height)
            await board.start()
            return Bench(led_url=board.url, hardware=board)
        # A bitmap panel: the "hardware" is the PNG the panel would light up.
        return Bench(led_url=str(sim_dir / "current.png"))
    hw = SimStationHardware(transport=transport, state_dir=sim_dir)
    await hw.start()
    return Bench(audio=hw.sink, clock=hw.clock, modbus_url=hw.modbus_url, hardware=hw)


async def start_simulated_station(config: AgentConfig, *, sim_transport: Transport = "pty") -> RunningStation:
    """A station on simulated hardware (tests, the demo, `communecast sim stations`)."""
    return await start_station(config, bench=await open_bench(config, transport=sim_transport))
