"""The station agent `bench agent` measures, in a process of its own (so its RSS and CPU are
its own and a cgroup can cap it): the real speaker agent (device_agents.runner.start_station)
with its real Modbus driver on the cabinet simulator's pty (which the benchmark process runs,
as a real cabinet would be outside the Pi) and the simulated sound card, which decodes exactly as
the Pi's output does (device_agents/hardware/decode.py: opusdec for the controller's Ogg/Opus when
installed, ffmpeg otherwise). The sound card's player (aplay on a Pi, ~3 MB while it plays) is
not part of it.

It notes for every controller message when it came off the socket and when the handler was
done (signature checked, stored, ack queued), and when each audio was decoded and ready; on
SIGTERM it stops the agent and writes those to --out as JSON. It prints "settled" once the agent's
start-up one-offs are done (the first clock probe).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from device_agents.common.config import AgentConfig
from device_agents.runner import Bench, start_station
from firmware_sim.audio_sink import SimAudioSink

Handler = Callable[[str, bytes], Awaitable[None]]


async def main(config_path: Path, modbus_url: str, out: Path) -> None:
    config = AgentConfig.load(config_path)
    sink = SimAudioSink(state_dir=config.data_dir / "sim")
    station = await start_station(config, bench=Bench(audio=sink, modbus_url=modbus_url))
    messages: list[dict[str, Any]] = []
    prepared: list[float] = []
    link = station.agent.link

    def wrap(inner: Handler) -> Handler:
        async def handler(topic: str, payload: bytes) -> None:
            arrived = link.last_arrival
            await inner(topic, payload)
            messages.append({"topic": topic, "arrived": arrived, "handled": time.time()})

        return handler

    link.wrap_handler(wrap)
    prepare = sink.prepare

    async def stamped_prepare(files: Any) -> Any:
        audio = await prepare(files)
        prepared.append(time.time())
        return audio

    sink.prepare = stamped_prepare  # type: ignore[method-assign]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("running", flush=True)

    async def settled() -> None:
        """Start-up's one-offs are done once the first clock probe is (0.5-20 s after start, its
        first HTTP request): idle is measured after it, or a one-off counts as idle CPU."""
        probe = station.agent.role.clock_probe
        while probe.latest is None:  # noqa: ASYNC110 (another object's attribute, polled by the bench only)
            await asyncio.sleep(0.2)
        print("settled", flush=True)

    settle = asyncio.create_task(settled())
    await stop.wait()
    settle.cancel()
    await station.stop()
    out.write_text(json.dumps({"messages": messages, "prepared": prepared}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--modbus", required=True)
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args()
    asyncio.run(main(a.config, a.modbus, a.out))
    sys.exit(0)
