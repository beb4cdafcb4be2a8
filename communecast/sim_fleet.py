"""`communecast sim fleet`: N simulated speaker stations in one process against a running controller.

It runs firmware_sim/fleet.py and reports what the fleet costs per station (memory, file
descriptors, tasks). It lives in the product, not in benchmarks/, because the simulator
container runs it (docs/scaling.md); `communecast bench sync` reuses `start_fleet` and
`print_fleet` for its own fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
from pathlib import Path
from typing import Any

from communecast.stations import ApiClient
from firmware_sim.fleet import Fleet, provision_fleet, rss_bytes


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def start_fleet(configs: list[Any]) -> tuple[Fleet, dict[str, Any]]:
    """Start a fleet and measure what it costs per station (RSS, file descriptors)."""
    rss0, fds0 = rss_bytes(), _fd_count()
    fleet = Fleet(configs)
    seconds = await fleet.start()
    await asyncio.sleep(0)  # let the birth messages go out
    rss1, fds1 = rss_bytes(), _fd_count()
    n = max(len(configs), 1)
    return fleet, {
        "devices": len(configs), "connected": fleet.connected(), "start_s": round(seconds, 2),
        "rss_mb": round(rss1 / 2**20, 1), "rss_delta_mb": round((rss1 - rss0) / 2**20, 1),
        "rss_per_station_kb": round((rss1 - rss0) / n / 1024, 1),
        "fds_per_station": round((fds1 - fds0) / n, 2),
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "tasks_per_station": round(len(asyncio.all_tasks()) / n, 2),
    }  # fmt: skip


def print_fleet(m: dict[str, Any]) -> None:
    print(f"fleet: {m['connected']}/{m['devices']} stations connected in {m['start_s']} s")
    print(f"  memory: RSS {m['rss_mb']} MB, +{m['rss_delta_mb']} MB for the fleet = "
          f"{m['rss_per_station_kb']} KB per station")
    print(f"  file descriptors per station: {m['fds_per_station']} (soft limit {m['fd_limit']}); "
          f"asyncio tasks per station: {m['tasks_per_station']}")


async def run_sim_fleet(
    controller_url: str, username: str, password: str, devices: int, data_dir: Path, *,
    mqtt_host: str | None, seconds: float | None, json_path: str | None,
) -> dict[str, Any]:
    api = await ApiClient.login(controller_url, username, password)
    configs = await provision_fleet(controller_url, api.token, devices, data_dir, mqtt_host=mqtt_host)
    fleet, measured = await start_fleet(configs)
    print_fleet(measured)
    if json_path:
        Path(json_path).write_text(json.dumps(measured, indent=2))
    heartbeat = os.environ.get("COMMUNECAST_SIM_HEARTBEAT_FILE")
    try:
        loop = asyncio.get_running_loop()
        until = None if seconds is None else loop.time() + seconds
        while until is None or loop.time() < until:
            if heartbeat and fleet.connected():
                Path(heartbeat).touch()  # the container's health check reads its age
            await asyncio.sleep(1 if until is not None else 15)
    finally:
        await fleet.stop()
    return measured


def run_fleet(args: Any) -> int:
    password = os.environ.get("COMMUNECAST_ADMIN_PASSWORD")
    if not password:
        print("set COMMUNECAST_ADMIN_PASSWORD (the controller's admin password)")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_sim_fleet(
            args.controller, os.environ.get("COMMUNECAST_ADMIN_USER", "admin"), password, args.devices,
            Path(args.data_dir), mqtt_host=args.mqtt_host, seconds=args.seconds, json_path=args.json,
        ))  # fmt: skip
    return 0
