"""`communecast bench ingest`: events at rising rates into SQLite and PostgreSQL.

For each backend it starts a private broker and a controller process, seeds stations,
and for each offered rate runs a load generator in another process. It reports what the
controller stored (zero loss is checked by counting rows), how fast, its CPU and RSS,
and — as the broker's own limit — what a bare subscriber drains at the same rate.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from controller.db.models import Device, DeviceEvent
from controller.db.session import Database
from testkit.harness import CONTROLLER_USER, System

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _auth(system: System) -> list[str]:
    """The load generator's broker login; `--password=` in one word, as a random password may
    begin with '-' (argparse then took it for an option and the run failed)."""
    return ["--port", str(system.broker.port), "--username", CONTROLLER_USER,
            f"--password={system.mqtt_password}"]


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds used, RSS in MB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss_kb = next(
        int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )  # fmt: skip
    return cpu, rss_kb / 1024


async def _loadgen(*args: str) -> asyncio.subprocess.Process:
    # benchmarks/ is not installed (it ships with the source checkout only): the child finds it
    # through PYTHONPATH = the checkout root, whatever directory the command was started from.
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.loadgen", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip


async def _last_json(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    out, err = await proc.communicate()
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"load generator failed: {err.decode()[-2000:]}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def _count(db: Database, tag: str) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(DeviceEvent)
                            .where(DeviceEvent.id.like(f"{tag}%"))) or 0)  # fmt: skip


async def _publishers(auth: list[str], rate: int, seconds: float, devices: int, tag: str,
                      processes: int, *extra: str) -> dict[str, Any]:
    """Offer `rate` msg/s from `processes` load generators at once (one publisher offers up
    to ~20,000 msg/s here), each a share of the rate and of the devices, its own tag
    suffix; their results summed as one publisher's."""
    share = rate / processes
    procs = [await _loadgen("publish", *auth, "--rate", f"{share:.3f}", "--seconds", str(seconds),
                            "--devices", str(devices), "--tag", f"{tag}{k}-", *extra)
             for k in range(processes)]  # fmt: skip
    results = await asyncio.gather(*(_last_json(p) for p in procs))
    published = sum(int(r["published"]) for r in results)
    started = min(float(r["started_at"]) for r in results)
    ended = max(float(r["started_at"]) + float(r["seconds"]) for r in results)
    return {"published": published, "rate": published / max(ended - started, 1e-9), "started_at": started}


async def _run_rate(system: System, db: Database, rate: int, seconds: float, devices: int,
                    processes: int = 1) -> dict[str, Any]:
    auth = _auth(system)
    pid = system.controller.proc.pid  # type: ignore[union-attr]
    tag = f"r{rate}x"
    cpu0, _ = proc_stats(pid)
    t0 = time.time()  # wall clock: compared with the publisher's own start
    rss_max = 0.0
    pub_task = asyncio.create_task(_publishers(auth, rate, seconds, devices, tag, processes))
    total = processes * int(rate / processes * seconds)  # what the load generators publish
    stored, t_done, last_change, last_n = 0, None, time.time(), -1
    while True:
        await asyncio.sleep(0.1)
        rss_max = max(rss_max, proc_stats(pid)[1])
        stored = await asyncio.to_thread(_count, db, tag)
        if stored != last_n:
            last_n, last_change = stored, time.time()
        if t_done is None and stored >= total:
            t_done = time.time()  # not when the publisher process has exited (~0.5 s later)
            cpu1, _ = proc_stats(pid)
        if pub_task.done():
            if t_done is not None:
                break
            if time.time() - last_change > 5:
                break  # stalled: whatever is missing is lost
    if t_done is None:
        cpu1, _ = proc_stats(pid)
    pub_result = pub_task.result()
    # From the first publish (the load generator's start-up is not the controller's time) to
    # the last row stored, or to when storing stalled.
    elapsed = (t_done or last_change) - pub_result.get("started_at", t0)
    return {
        "offered_per_s": rate,
        "published": pub_result["published"],
        "publisher_per_s": round(pub_result["rate"], 1),
        "stored": stored,
        "lost": pub_result["published"] - stored,
        "msgs_per_s": round(stored / elapsed, 1),
        "controller_cpu_pct": round(100 * (cpu1 - cpu0) / ((t_done or last_change) - t0), 1),
        "rss_mb": round(rss_max, 1),
    }


async def _baseline(system: System, rate: int, seconds: float, devices: int,
                    processes: int = 1) -> dict[str, Any]:
    auth = _auth(system)
    total = processes * int(rate / processes * seconds)
    drain = await _loadgen("drain", *auth, "--topic", "cc/v1/bench/+/evt", "--expect", str(total),
                           "--timeout", str(seconds + 30))  # fmt: skip
    assert drain.stdout is not None
    await drain.stdout.readline()  # {"ready": true}
    await _publishers(auth, rate, seconds, devices, "base", processes, "--topic", "cc/v1/bench/{device}/evt")
    got = await _last_json(drain)
    return {"offered_per_s": rate, "received": got["received"], "msgs_per_s": round(got["rate"], 1),
            "lost": total - got["received"]}  # fmt: skip


def best_sustained(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fastest step the controller kept up with: nothing lost, everything stored at >= 95 %
    of the rate that reached the broker. Judged on what the load generator really published:
    on two shared cores it falls short of 7,500/s, and the controller cannot store what was
    never sent."""
    kept_up = [r for r in runs if r["lost"] == 0
               and r["msgs_per_s"] >= 0.95 * min(r["offered_per_s"], r["publisher_per_s"])]
    return max(kept_up, key=lambda r: r["msgs_per_s"]) if kept_up else None


def _climbing(runs: list[dict[str, Any]], step: float, ceiling: int) -> int | None:
    """The next rate to offer when looking for the ceiling: `step` times the last one, while the
    controller still kept up with it and the load generators still offered what was asked."""
    last = runs[-1]
    kept_up = best_sustained([last]) is not None
    offered_enough = last["publisher_per_s"] >= 0.9 * last["offered_per_s"]
    nxt = int(round(last["offered_per_s"] * step, -2))
    return nxt if kept_up and offered_enough and nxt <= ceiling else None


async def bench_backend(
    url: str, label: str, rates: list[int], seconds: float, devices: int,
    processes: int = 1, climb: float = 0.0, climb_max: int = 60_000,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cc-ingest-") as tmp:
        system = System(Path(tmp) / "sys", url)
        await system.start()
        db = Database(url)
        try:
            with db.session() as s:
                commune = system.communes[0]["id"]
                s.add_all(Device(uid=f"bench-{i}", name=f"bench {i}", kind="speaker",
                                 commune_id=commune, tags=[], reported={}) for i in range(devices))
            runs = [await _run_rate(system, db, r, seconds, devices, processes) for r in rates]
            # --climb: past the given rates, keep raising the offer until the controller falls
            # behind or loses (the ceiling), or the load generators cannot offer more.
            while climb > 1 and (nxt := _climbing(runs, climb, climb_max)) is not None:
                runs.append(await _run_rate(system, db, nxt, seconds, devices, processes))
            baselines = [await _baseline(system, r["offered_per_s"], seconds, devices, processes)
                         for r in runs]
        finally:
            db.dispose()
            await system.stop()
    best = best_sustained(runs)
    base_best = max((b["msgs_per_s"] for b in baselines if b["lost"] == 0), default=0.0)
    return {
        "backend": label,
        "msgs_per_s": best["msgs_per_s"] if best else 0.0,
        "sustained_offered_per_s": best["offered_per_s"] if best else 0,
        "lost": sum(r["lost"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
        "controller_cpu_pct": best["controller_cpu_pct"] if best else None,
        "generator_max_per_s": max(r["publisher_per_s"] for r in runs),
        "processes": processes,
        "baseline_msgs_per_s": base_best,
        "runs": runs,
        "baseline_runs": baselines,
    }


def print_ingest(results: list[dict[str, Any]]) -> None:
    for res in results:
        print(f"bench ingest [{res['backend']}]: highest sustained zero-loss "
              f"{res['msgs_per_s']:.0f} msg/s (offered {res['sustained_offered_per_s']}/s; stored at >= 95 % "
              f"of the rate published), "
              f"controller CPU {res['controller_cpu_pct']}% there, "
              f"bare-subscriber baseline {res['baseline_msgs_per_s']:.0f} msg/s, max RSS {res['rss_mb']} MB; "
              f"the load generators ({res['processes']} process(es)) offered up to "
              f"{res['generator_max_per_s']:.0f} msg/s")
        for r, b in zip(res["runs"], res["baseline_runs"], strict=True):
            print(f"  offered {r['offered_per_s']:>6}/s (published at {r['publisher_per_s']:>6.0f}/s): "
                  f"stored {r['stored']:>7} lost {r['lost']:>5} "
                  f"at {r['msgs_per_s']:>8.0f}/s, controller CPU {r['controller_cpu_pct']:>5}% "
                  f"RSS {r['rss_mb']} MB | bare subscriber {b['msgs_per_s']:>8.0f}/s lost {b['lost']}")
