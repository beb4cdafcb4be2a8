"""A fleet over several worker processes: `communecast sim fleet --processes P`.

One event loop runs out of CPU long before it runs out of memory (docs/scaling.md: at
1,000 stations a bulletin's start instant is ~0.3 s late because every station's coroutine
waits for the one core). P spawned processes, each with its own interpreter and event
loop running a `firmware_sim.fleet.Fleet` of N/P stations, use every core; the parent only
splits the (already provisioned) configs, aggregates what the workers report and
relays stop. Spawn, not fork: a worker never inherits the parent's loop, threads or
sockets (so the calling program's main module must be import-safe, `if __name__ ==
"__main__"`, as the `communecast` command is).

A benchmark measures inside the workers through `FleetProcesses.call(fn, *args)`: every
worker runs the module-level coroutine function `fn(fleet, *args)` on its own loop and the
parent gets one result per worker. `LocalFleet` offers the same `call` for a fleet in the
caller's own loop, so a benchmark is written once for both (`benchmarks/fleet_probe.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import multiprocessing
import os
import queue
import resource
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device_agents.common.config import AgentConfig

if TYPE_CHECKING:
    from firmware_sim.fleet import Fleet

STATUS_EVERY_S = 5.0
FleetCall = Callable[..., Awaitable[Any]]  # async fn(fleet, *args), defined at module level


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


def _target_name(fn: FleetCall) -> str:
    if "<" in fn.__qualname__:
        raise ValueError(f"{fn.__qualname__}: a fleet call must be a module-level function")
    return f"{fn.__module__}:{fn.__qualname__}"


def _resolve(name: str) -> FleetCall:
    module, _, attr = name.partition(":")
    fn: FleetCall = getattr(importlib.import_module(module), attr)
    return fn


def _serve_calls(
    index: int, fleet: Fleet, commands: Any, reports: Any, loop: asyncio.AbstractEventLoop
) -> None:
    """A worker's thread: run each call the parent sends on the fleet's loop, send back its result."""
    while True:
        command = commands.get()
        if command is None:
            return
        call_id, name, args = command
        try:
            future = asyncio.run_coroutine_threadsafe(_resolve(name)(fleet, *args), loop)
            reply = {"result": future.result()}
        except BaseException as exc:  # the parent raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        reports.put({"worker": index, "phase": "reply", "call": call_id, **reply})


async def _worker_main(
    index: int, configs: list[tuple[int, AgentConfig]], reports: Any, stop: Any, commands: Any
) -> None:
    from firmware_sim.fleet import Fleet, rss_bytes

    rss0, fds0 = rss_bytes(), _fd_count()
    fleet = Fleet(configs)
    server = threading.Thread(target=_serve_calls, args=(index, fleet, commands, reports,
                                                         asyncio.get_running_loop()), daemon=True)
    try:
        seconds = await fleet.start()
        server.start()
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


def _worker(
    index: int, configs: list[tuple[int, AgentConfig]], reports: Any, stop: Any, commands: Any
) -> None:
    """A worker process: its own event loop; ^C goes to the parent, which sets `stop`."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(_worker_main(index, configs, reports, stop, commands))
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
    _commands: list[Any] = field(default_factory=list)
    _replies: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    _call_ids: Any = field(default_factory=itertools.count)

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
            self._commands.append(ctx.Queue())
            p = ctx.Process(target=_worker, args=(i, chunk, self._reports, self._stop, self._commands[i]),
                            name=f"fleet-{i}", daemon=True)
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
        if msg["phase"] == "reply":
            self._replies.setdefault(msg["call"], {})[msg["worker"]] = msg
            return
        row = self.workers.setdefault(msg["worker"], {})
        if msg["phase"] == "failed":
            raise RuntimeError(f"fleet worker {msg['worker']} failed: {msg['error']}")
        row.update(msg)

    def call(self, fn: FleetCall, *args: Any, timeout: float = 600.0) -> list[Any]:
        """Run `fn(fleet, *args)` in every worker (blocking); their results in worker order."""
        call_id, name = next(self._call_ids), _target_name(fn)
        for commands in self._commands:
            commands.put((call_id, name, args))
        deadline = time.monotonic() + timeout
        while len(self._replies.get(call_id, {})) < len(self._commands):
            if time.monotonic() > deadline:
                raise TimeoutError(f"fleet workers did not answer {name} in {timeout:.0f} s")
            self._take(deadline - time.monotonic())
        replies = self._replies.pop(call_id)
        errors = [f"worker {w}: {r['error']}" for w, r in sorted(replies.items()) if "error" in r]
        if errors:
            raise RuntimeError(f"{name} failed in " + "; ".join(errors))
        return [replies[w]["result"] for w in sorted(replies)]

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
        for commands in self._commands:
            commands.put(None)
        deadline = time.monotonic() + timeout
        for p in self._procs:
            p.join(max(0.1, deadline - time.monotonic()))
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        self._procs = []
        self._commands = []


@dataclass
class LocalFleet:
    """A `Fleet` in the caller's own event loop, behind the same `call` as FleetProcesses."""

    fleet: Fleet

    async def call(self, fn: FleetCall, *args: Any) -> list[Any]:
        return [await fn(self.fleet, *args)]

    async def stop(self) -> None:
        await self.fleet.stop()


@dataclass
class WorkerFleet:
    """FleetProcesses for asyncio callers (its blocking calls run in a thread)."""

    processes: FleetProcesses

    async def call(self, fn: FleetCall, *args: Any) -> list[Any]:
        return await asyncio.to_thread(self.processes.call, fn, *args)

    async def stop(self) -> None:
        await asyncio.to_thread(self.processes.stop)


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
