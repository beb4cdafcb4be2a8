"""A fleet over several worker processes: `communecast sim fleet --processes P`.

One event loop runs out of CPU long before it runs out of memory (docs/scaling.md: at
1,000 stations a bulletin's start instant is ~0.3 s late because every station's coroutine
waits for the one core). P spawned processes, each with its own interpreter and event
loop running a `firmware_sim.fleet.Fleet` of N/P stations, use every core; the parent only
splits the (already provisioned) configs, aggregates what the workers report and
relays stop. Spawn, not fork: a worker never inherits the parent's loop, threads or
sockets (so the calling program's main module must be import-safe, `if __name__ ==
"__main__"`, as the `communecast` command is).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_agents.common.config import AgentConfig

STATUS_EVERY_S = 5.0


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """Contiguous, near-equal chunks; never an empty one."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _worker_main(index: int, configs: list[tuple[int, AgentConfig]], reports: Any, stop: Any) -> None:
    from firmware_sim.fleet import Fleet, rss_bytes

    rss0, fds0 = rss_bytes(), _fd_count()
    fleet = Fleet(configs)
    try:
        seconds = await fleet.start()
        await asyncio.sleep(0)
        reports.put({
            "worker": index, "phase": "started", "pid": os.getpid(), "devices": len(configs),
            "connected": fleet.connected(), "start_s": round(seconds, 2),
            "rss_base": rss0, "rss": rss_bytes(), "fds": _fd_count() - fds0,
            "tasks": len(asyncio.all_tasks()),
            "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        })  # fmt: skip
        last = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now - last >= STATUS_EVERY_S:
                reports.put({"worker": index, "phase": "status", "connected": fleet.connected(),
                             "devices": len(configs), "rss": rss_bytes()})
                last = now
            await asyncio.sleep(0.2)
    finally:
        await fleet.stop()


def _worker(index: int, configs: list[tuple[int, AgentConfig]], reports: Any, stop: Any) -> None:
    """A worker process: its own event loop; ^C goes to the parent, which sets `stop`."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(_worker_main(index, configs, reports, stop))
    except BaseException as exc:  # tell the parent why, then die
        reports.put({"worker": index, "phase": "failed", "error": f"{type(exc).__name__}: {exc}"})
        raise


@dataclass
class FleetProcesses:
    """The parent's view: one row per worker, filled in from their reports."""

    configs: list[tuple[int, AgentConfig]]
    processes: int
    workers: dict[int, dict[str, Any]] = field(default_factory=dict)
    _procs: list[Any] = field(default_factory=list)

    def start(self, *, timeout: float = 600.0) -> dict[str, Any]:
        """Spawn the workers, wait until each has its stations connected; returns the figures."""
        ctx = multiprocessing.get_context("spawn")
        self._reports = ctx.Queue()
        self._stop = ctx.Event()
        chunks = split(self.configs, self.processes)
        began = time.monotonic()
        for i, chunk in enumerate(chunks):
            # Pickled as they are: unpickling skips validation and the environment lookups that
            # rebuilding a settings object costs (~3 ms each, 15 s for 5,000 stations).
            p = ctx.Process(target=_worker, args=(i, chunk, self._reports, self._stop), name=f"fleet-{i}",
                            daemon=True)
            p.start()
            self._procs.append(p)
        deadline = began + timeout
        while sum(1 for w in self.workers.values() if w.get("phase") != "failed" and "start_s" in w) < len(
            chunks
        ):
            self._take(max(0.1, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise TimeoutError("fleet workers did not all connect in time")
        return self.figures(time.monotonic() - began)

    def _take(self, timeout: float) -> None:
        try:
            msg = self._reports.get(timeout=min(timeout, 1.0))
        except queue.Empty:
            dead = [p.name for p in self._procs if not p.is_alive()]
            if dead:
                raise RuntimeError(f"fleet worker(s) exited: {', '.join(dead)}") from None
            return
        row = self.workers.setdefault(msg["worker"], {})
        if msg["phase"] == "failed":
            raise RuntimeError(f"fleet worker {msg['worker']} failed: {msg['error']}")
        row.update(msg)

    def poll(self, seconds: float) -> None:
        """Take reports for about `seconds` (status updates, failures)."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self._take(until - time.monotonic())

    def connected(self) -> int:
        return sum(int(w.get("connected", 0)) for w in self.workers.values())

    def all_connected(self) -> bool:
        rows = self.workers.values()
        return bool(rows) and all(w.get("connected") == w.get("devices") for w in rows)

    def figures(self, wall_s: float) -> dict[str, Any]:
        rows = [self.workers[i] for i in sorted(self.workers)]
        n = max(sum(r["devices"] for r in rows), 1)
        delta = sum(r["rss"] - r["rss_base"] for r in rows)
        return {
            "devices": n, "processes": len(rows), "connected": self.connected(),
            "start_s": round(wall_s, 2), "worker_start_s": [r["start_s"] for r in rows],
            "rss_mb": round(sum(r["rss"] for r in rows) / 2**20, 1),
            "rss_base_mb_per_worker": round(sum(r["rss_base"] for r in rows) / len(rows) / 2**20, 1),
            "rss_delta_mb": round(delta / 2**20, 1), "rss_per_station_kb": round(delta / n / 1024, 1),
            "fds_per_station": round(sum(r["fds"] for r in rows) / n, 2),
            "tasks_per_station": round(sum(r["tasks"] for r in rows) / n, 2),
            "fd_limit": min(r["fd_limit"] for r in rows),
        }  # fmt: skip

    def stop(self, timeout: float = 60.0) -> None:
        if not self._procs:
            return
        self._stop.set()
        deadline = time.monotonic() + timeout
        for p in self._procs:
            p.join(max(0.1, deadline - time.monotonic()))
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        self._procs = []


def print_figures(m: dict[str, Any]) -> None:
    print(f"fleet: {m['connected']}/{m['devices']} stations connected in {m['start_s']} s "
          f"({m['processes']} processes; each worker's own start: {m['worker_start_s']} s)")
    print(f"  memory: RSS {m['rss_mb']} MB in all workers ({m['rss_base_mb_per_worker']} MB each before "
          f"its stations), +{m['rss_delta_mb']} MB for the stations = "
          f"{m['rss_per_station_kb']} KB per station")
    print(f"  file descriptors per station: {m['fds_per_station']} (soft limit {m['fd_limit']}); "
          f"asyncio tasks per station: {m['tasks_per_station']}")


def run_fleet_processes(
    configs: list[tuple[int, AgentConfig]], processes: int, *, seconds: float | None = None,
    heartbeat: Path | None = None, on_started: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run until `seconds` pass (or ^C); print the figures, then a status line now and then."""
    fleet = FleetProcesses(configs, processes)
    try:
        figures = fleet.start()
        print_figures(figures)
        if on_started is not None:
            on_started(figures)
        until = None if seconds is None else time.monotonic() + seconds
        last_print = time.monotonic()
        with contextlib.suppress(KeyboardInterrupt):
            while until is None or time.monotonic() < until:
                fleet.poll(1.0 if until is not None else STATUS_EVERY_S)
                if heartbeat is not None and fleet.all_connected():
                    heartbeat.touch()  # the container's health check reads its age
                if time.monotonic() - last_print >= 60:
                    rss = sum(w.get("rss", 0) for w in fleet.workers.values()) / 2**20
                    print(f"fleet: {fleet.connected()}/{figures['devices']} connected, RSS {rss:.0f} MB",
                          flush=True)
                    last_print = time.monotonic()
    finally:
        fleet.stop()
    return figures
