"""Wire an LED agent to its board controller: real serial line, bitmap panel, or the simulator."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from device_agents.common.config import AgentConfig
from device_agents.led.agent import LedAgent
from device_agents.led.driver import LedController


@dataclass
class RunningLedBoard:
    agent: LedAgent
    hardware: object | None = None  # firmware_sim.led.server.SimLedBoard when simulated
    extra: list[object] = field(default_factory=list)

    async def stop(self) -> None:
        await self.agent.stop()
        if self.hardware is not None:
            with contextlib.suppress(Exception):
                await self.hardware.close()  # type: ignore[attr-defined]


def controller_for(config: AgentConfig, url: str, *, png_path: Path | None = None) -> LedController:
    if config.led_protocol == "alpha":
        from device_agents.led.alpha import AlphaController

        return AlphaController(url, baudrate=config.led_baudrate)
    if config.led_protocol == "bx5k":
        from device_agents.led.bx5k import Bx5kController

        return Bx5kController(url, baudrate=config.led_baudrate, width=config.led_width,
                              height=config.led_height)
    from device_agents.led.bitmap import BitmapPanel

    target = png_path or Path(url)

    def sink(img: object) -> None:  # a panel daemon (e.g. a HUB75 driver) picks the frame up here
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        img.save(tmp, format="PNG")  # type: ignore[attr-defined]
        tmp.replace(target)

    return BitmapPanel(sink, width=config.led_width, height=config.led_height)


async def start_led_board(
    config: AgentConfig, *, simulated: bool, sim_transport: str = "pty"
) -> RunningLedBoard:
    if simulated and config.led_protocol in ("alpha", "bx5k"):
        from firmware_sim.led.server import SimLedBoard

        hw = SimLedBoard(config.led_protocol, config.data_dir / "sim", transport=sim_transport,
                         width=config.led_width, height=config.led_height)
        await hw.start()
        agent = LedAgent(config, controller_for(config, hw.url))
        await agent.start()
        return RunningLedBoard(agent, hw)
    if simulated:  # a bitmap panel: the "hardware" is the PNG the panel would light up
        agent = LedAgent(config, controller_for(config, "", png_path=config.data_dir / "sim" / "current.png"))
        await agent.start()
        return RunningLedBoard(agent)
    if not config.led_url:
        raise ValueError("led_url is needed: the board controller's serial port or socket:// URL")
    agent = LedAgent(config, controller_for(config, config.led_url))
    await agent.start()
    return RunningLedBoard(agent)
