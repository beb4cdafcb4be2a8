"""`communecast bench sync` (issue 8): start skew across N stations for one bulletin.

It starts a whole
system (private broker, controller process, a fleet in this process), schedules one
bulletin for all N and reports the start skew across stations (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import fleet_probe
from benchmarks.broadcast import tone
from communecast.sim_fleet import print_fleet, start_fleet
from firmware_sim.fleet import provision_fleet
from testkit.harness import System, broker_dynsec_for


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


async def _profile_window(path: Path, begin: float, end: float) -> None:
    """cProfile this process (the fleet) from `begin` to `end` (unix times), into `path`."""
    import cProfile

    await asyncio.sleep(max(0.0, begin - time.time()))
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await asyncio.sleep(max(0.0, end - time.time()))
    finally:
        profiler.disable()
        profiler.dump_stats(path)


async def bench_sync(devices: int, lead_s: float | None, database_url: str | None,
                     profile: Path | None = None, processes: int = 1) -> dict[str, Any]:
    """One bulletin to N stations: how far apart do their speakers start? `processes` > 1 runs
    the stations in that many worker processes; the bare-timer baseline then runs in them too."""
    if profile is not None and processes > 1:
        raise ValueError("--profile profiles this process: use it with a single-process fleet")
    # Every station downloads the media from the controller first: give a big fleet time.
    lead = lead_s if lead_s is not None else max(5.0, 3.0 + devices / 25)
    with tempfile.TemporaryDirectory(prefix="cc-bench-sync-") as tmp:
        root = Path(tmp)
        system = System(root / "system", database_url or f"sqlite:///{root / 'bench.db'}",
                        broker_dynsec=broker_dynsec_for(devices))
        await system.start()
        fleet: fleet_probe.Runner | None = None
        try:
            configs = await provision_fleet(system.base_url, system.token, devices, root / "fleet")
            if processes > 1:
                fleet, start_s = await fleet_probe.start_fleet(configs, processes)
                assert isinstance(fleet, fleet_probe.WorkerFleet)
                measured = fleet.processes.figures(start_s)
            else:
                local, measured = await start_fleet(configs)
                fleet = fleet_probe.LocalFleet(local)
            with tone(root / "tone.wav", 2.0).open("rb") as fh:
                media = (await system.api("POST", "/api/v1/media", files={"file": ("t.wav", fh)})).json()
            start_at = (datetime.now(UTC) + timedelta(seconds=lead + 1)).replace(microsecond=0)
            t0 = time.monotonic()
            await system.api_json("POST", "/api/v1/broadcasts", json={
                "title": "Bản tin đồng bộ", "media_sha256": media["sha256"], "targets": {"all": True},
                "start_at": start_at.isoformat()})  # fmt: skip
            scheduled = start_at.timestamp()
            if profile is not None:  # the relay-on 1.5 s before the instant, and the instant itself
                profiling = asyncio.create_task(_profile_window(profile, scheduled - 2.0, scheduled + 0.5))
            first = fleet_probe.merged(await fleet.call(fleet_probe.first_playbacks, lead + 30))
            elapsed = time.monotonic() - t0
            if profile is not None:
                await profiling
            measured["rss_after_play_mb"] = round(sum(await fleet.call(fleet_probe.rss)) / 2**20, 1)
            # A station that was not ready at the instant starts late with a new instant.
            starts = [s for r, s in zip(first["requested"], first["started"], strict=True)
                      if abs(r - scheduled) < 1e-3]
            if not starts:
                raise RuntimeError(f"no station started at the instant ({len(first['started'])} late)")
            await asyncio.sleep(2.0)  # the fleet's playbacks end; then the same instant, bare
            bare = await _bare_baseline(fleet, devices, max(1, processes))
        finally:
            if fleet is not None:
                await fleet.stop()
            await system.stop()
    errors = [(s - scheduled) * 1000 for s in starts]
    median = statistics.median(starts)
    skew = [abs(s - median) * 1000 for s in starts]
    return {
        "devices": devices, "processes": max(1, processes), "lead_s": round(lead, 1),
        "database": "postgresql" if database_url and "postgres" in database_url else "sqlite",
        "start_error_ms": {"p50": round(_pct(errors, 0.5), 2), "p99": round(_pct(errors, 0.99), 2),
                           "max": round(max(errors), 2), "min": round(min(errors), 2)},
        "skew_ms": {"p50": round(_pct(skew, 0.5), 2), "p99": round(_pct(skew, 0.99), 2),
                    "max": round(max(skew), 2)},
        "spread_ms": round((max(starts) - min(starts)) * 1000, 2),
        "bare_timer_skew_ms": bare,
        "ratio_p99": round(_pct(skew, 0.99) / bare["p99"], 2) if bare["p99"] > 0 else None,
        "on_time": len(starts), "late_start": len(first["started"]) - len(starts),
        "did_not_play": devices - len(first["started"]),
        "all_started_after_post_s": round(elapsed, 2),
        "fleet": measured,
    }  # fmt: skip


async def _bare_baseline(fleet: fleet_probe.Runner, devices: int, processes: int) -> dict[str, float]:
    """The simulator's own limit, where the stations run: N bare asyncio timers (split over the
    fleet's processes like the stations) wake at one instant and note the time."""
    instant = time.time() + 1.0
    woke = [t for part in await fleet.call(fleet_probe.bare_timers, math.ceil(devices / processes), instant)
            for t in part]
    median = statistics.median(woke)
    skew = [abs(w - median) * 1000 for w in woke]
    return {"p50": round(_pct(skew, 0.5), 2), "p99": round(_pct(skew, 0.99), 2), "max": round(max(skew), 2),
            "spread_ms": round((max(woke) - min(woke)) * 1000, 2)}


def print_sync(r: dict[str, Any]) -> None:
    e, k = r["start_error_ms"], r["skew_ms"]
    print(f"bench sync: {r['devices']} stations in {r['processes']} fleet process(es), one bulletin "
          f"{r['lead_s']} s ahead ({r['database']})")
    print(f"  sink start vs scheduled instant: p50 {e['p50']} ms, p99 {e['p99']} ms, max {e['max']} ms, "
          f"min {e['min']} ms")
    print(f"  skew from the median start:       p50 {k['p50']} ms, p99 {k['p99']} ms, max {k['max']} ms "
          f"(target p99 <= 20 ms); spread {r['spread_ms']} ms")
    b = r["bare_timer_skew_ms"]
    print(f"  bare baseline, {r['devices']} plain asyncio timers for one instant where the stations run: "
          f"skew p50 {b['p50']} ms, p99 {b['p99']} ms, spread {b['spread_ms']} ms -> ratio p99 "
          f"{r['ratio_p99']} (one CPU wakes them in turn; a real station has its own)")
    print(f"  {r['on_time']} started at the instant, {r['late_start']} late (not ready), "
          f"{r['did_not_play']} did not play")
    print_fleet(r["fleet"])
    print(f"  fleet RSS after everyone fetched and played it: {r['fleet'].get('rss_after_play_mb')} MB")


def run_sync(args: Any) -> int:
    result = asyncio.run(bench_sync(args.devices, args.lead, args.database_url,
                                    Path(args.profile) if args.profile else None, args.processes))
    print_sync(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
