"""`communecast bench reconnect`: restart the broker under N connected stations (issue 18).

A real controller (SQLite) and broker (testkit.harness.System), N speaker stations from the
fleet simulator (in this process or `--processes P` workers), every station with its own
broker account. Once all are connected the broker is stopped and started again on the same
port; the benchmark then reports:

- how long until every station is online again (from the broker's restart),
- the peak connection rate (the most reconnects inside any one second), and the busiest
  100 ms, which is what full-jitter backoff (mqtt_adapter/backoff.py) spreads out,
- connection attempts that failed (refused or dropped before they worked) and stations that
  never came back within the deadline ("given up"),
- the controller: its CPU while the fleet came back, how long until its /healthz said 200
  again, and whether its API answered every poll meanwhile (it must never stop answering).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import fleet_probe
from benchmarks.ingest import proc_stats
from firmware_sim.fleet import Fleet, provision_fleet, raise_fd_limit
from testkit.harness import System, broker_dynsec_for
from testkit.timing import busiest_window
from testkit.waiting import eventually

POLL_S = 0.25


async def link_figures(fleet: Fleet) -> list[list[Any]]:
    """[connected now, latest connection instant, connections, failed attempts] per station."""
    return [[st.agent.link.connected.is_set(), st.agent.link.connected_at, st.agent.link.connections,
             st.agent.link.failed_attempts] for st in fleet.stations]  # fmt: skip


async def _stations(fleet: fleet_probe.Runner) -> list[list[Any]]:
    return [row for part in await fleet.call(link_figures) for row in part]


async def _health(http: httpx.AsyncClient) -> int:
    try:
        return (await http.get("/healthz", timeout=5)).status_code
    except httpx.HTTPError:
        return 0


async def bench_reconnect(devices: int, processes: int, deadline_s: float) -> dict[str, Any]:
    raise_fd_limit(8 * devices + 512)
    with tempfile.TemporaryDirectory(prefix="cc-bench-reconnect-") as tmp:
        root = Path(tmp)
        system = System(root / "system", f"sqlite:///{root / 'bench.db'}",
                        broker_dynsec=broker_dynsec_for(devices))
        await system.start()
        fleet: fleet_probe.Runner | None = None
        try:
            configs = await provision_fleet(system.base_url, system.token, devices, root / "fleet")
            fleet, start_s = await fleet_probe.start_fleet(configs, processes)
            before = await _stations(fleet)
            assert all(row[0] for row in before), "not every station connected before the restart"
            pid = system.controller.proc.pid if system.controller.proc else None
            async with httpx.AsyncClient(base_url=system.base_url) as http:
                system.broker.stop()
                stopped = time.time()
                await eventually(lambda: _stations(fleet), lambda rows: not any(r[0] for r in rows),
                                 timeout=60, interval=POLL_S, what="every station to see the broker gone")
                cpu0 = proc_stats(pid)[0] if pid else 0.0
                restarted = time.time()
                system.broker.start()
                healthy_at: float | None = None
                polls = unanswered = 0
                while True:
                    status = await _health(http)
                    polls += 1
                    unanswered += status == 0
                    if status == 200 and healthy_at is None:
                        healthy_at = time.time()
                    rows = await _stations(fleet)
                    back = sum(1 for r in rows if r[0] and r[1] is not None and r[1] >= restarted)
                    if (back == devices and healthy_at is not None) or time.time() - restarted > deadline_s:
                        break
                    await asyncio.sleep(POLL_S)
                cpu_s = (proc_stats(pid)[0] - cpu0) if pid else 0.0
                elapsed = time.time() - restarted
        finally:
            if fleet is not None:
                await fleet.stop()
            await system.stop()
    instants = [r[1] for r in rows if r[1] is not None and r[1] >= restarted]
    failed = sum(r[3] - b[3] for r, b in zip(rows, before, strict=True))
    return {
        "devices": devices, "processes": processes, "fleet_start_s": round(start_s, 1),
        "all_back": back == devices, "back": back, "given_up": devices - back,
        "all_back_s": round(max(instants) - restarted, 2) if back == devices else None,
        "first_back_s": round(min(instants) - restarted, 2) if instants else None,
        "peak_per_s": busiest_window(instants, 1.0), "busiest_100ms": busiest_window(instants, 0.1),
        "failed_attempts": failed, "broker_down_s": round(restarted - stopped, 2),
        "healthz_200_after_s": round(healthy_at - restarted, 2) if healthy_at else None,
        "healthz_polls": polls, "healthz_unanswered": unanswered,
        "controller_cpu_s": round(cpu_s, 2),
        "controller_cpu_pct": round(100 * cpu_s / max(elapsed, 1e-6), 1),
    }


def print_reconnect(r: dict[str, Any]) -> None:
    print(f"bench reconnect: broker restarted under {r['devices']} connected stations "
          f"({r['processes']} fleet process(es); fleet connected in {r['fleet_start_s']} s)")
    verdict = (f"all back {r['all_back_s']} s after the broker's restart" if r["all_back"]
               else f"ONLY {r['back']}/{r['devices']} back: {r['given_up']} not back by the deadline")
    print(f"  {verdict} (first after {r['first_back_s']} s; broker was down {r['broker_down_s']} s)")
    print(f"  peak reconnect rate: {r['peak_per_s']} in one second; busiest 100 ms: {r['busiest_100ms']}")
    print(f"  failed connection attempts (refused or dropped before working): {r['failed_attempts']}")
    print(f"  controller: /healthz 200 again after {r['healthz_200_after_s']} s; "
          f"{r['healthz_unanswered']} of {r['healthz_polls']} polls unanswered; "
          f"CPU {r['controller_cpu_s']} s ({r['controller_cpu_pct']} % of one core) "
          "while the fleet came back")


def run(args: Any) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    result = asyncio.run(bench_reconnect(args.devices, args.processes, args.deadline))
    print_reconnect(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result["all_back"] and result["healthz_unanswered"] == 0 else 1
