"""`communecast bench ...`: measurements the project ships, printing numbers (and JSON).

`bench broadcast` runs the whole path of one bulletin on this machine: private broker,
controller process, N simulated stations; it reports the start-instant error across
stations and the time from the POST to all acks and to all proofs of play.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from testkit.harness import System
from testkit.pgtemp import fresh_database


def tone(path: Path, seconds: float) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"sine=frequency=660:duration={seconds}", str(path)],
        check=True,
    )  # fmt: skip
    return path


async def _until(probe: Any, check: Any, timeout: float, interval: float = 0.005) -> float:
    t0 = time.monotonic()
    while not check(await probe()):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(interval)
    return time.monotonic()


async def bench_broadcast(
    devices: int, rounds: int, lead_s: float, database_url: str | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cc-bench-") as tmp:
        root = Path(tmp)
        system = System(root / "system", database_url or f"sqlite:///{root / 'bench.db'}")
        await system.start()
        try:
            stations = await system.add_stations(devices)
            await _until(lambda: system.api_json("GET", "/api/v1/devices"),
                         lambda ds: sum(d["online"] for d in ds) >= devices, 60, 0.05)
            with tone(root / "tone.wav", 2.0).open("rb") as fh:
                media = (await system.api("POST", "/api/v1/media", files={"file": ("t.wav", fh)})).json()
            runs = []
            for _ in range(rounds):
                before = [len(st.sink.playbacks) for st in stations]
                start_at = datetime.now(UTC) + timedelta(seconds=lead_s)
                t0 = time.monotonic()
                r = await system.api("POST", "/api/v1/broadcasts", json={
                    "title": "bench", "media_sha256": media["sha256"], "targets": {"all": True},
                    "start_at": start_at.isoformat()})  # fmt: skip
                t_post = time.monotonic()
                bc = r.json()
                t_ack = await _until(
                    lambda bc=bc: system.api_json("GET", f"/api/v1/broadcasts/{bc['id']}"),
                    lambda b: b["acked"] == devices, 60)
                for st, n in zip(stations, before, strict=True):
                    await st.sink.wait_for(lambda p, n=n, st=st: len(st.sink.playbacks) > n, timeout=60)
                t_proof = await _until(
                    lambda bc=bc: system.api_json(
                        "GET", f"/api/v1/play-log?broadcast_id={bc['id']}&status=played"),
                    lambda rows: len(rows) == devices, 60, 0.02)
                errors = [(st.sink.playbacks[-1].started_at - start_at.timestamp()) * 1000 for st in stations]
                runs.append({
                    "post_ms": (t_post - t0) * 1000, "all_acked_ms": (t_ack - t0) * 1000,
                    "start_error_ms": errors, "spread_ms": max(errors) - min(errors),
                    "proof_after_end_ms": (t_proof - t0) * 1000 - lead_s * 1000 - 2000,
                })  # fmt: skip
        finally:
            await system.stop()
    all_err = [e for r in runs for e in r["start_error_ms"]]
    return {
        "devices": devices,
        "rounds": rounds,
        "database": "postgresql" if database_url and "postgres" in database_url else "sqlite",
        "post_ms_median": statistics.median(r["post_ms"] for r in runs),
        "all_acked_ms_median": statistics.median(r["all_acked_ms"] for r in runs),
        "all_acked_ms_max": max(r["all_acked_ms"] for r in runs),
        "start_error_ms_mean": statistics.fmean(all_err),
        "start_error_ms_max_abs": max(abs(e) for e in all_err),
        "spread_ms_max": max(r["spread_ms"] for r in runs),
        "proof_after_end_ms_median": statistics.median(r["proof_after_end_ms"] for r in runs),
        "runs": runs,
    }


def print_broadcast(result: dict[str, Any]) -> None:
    print(
        f"bench broadcast: {result['devices']} stations x {result['rounds']} rounds "
        f"({result['database']})\n"
        f"  POST /broadcasts           median {result['post_ms_median']:.1f} ms\n"
        f"  POST -> all acks stored    median {result['all_acked_ms_median']:.0f} ms, "
        f"max {result['all_acked_ms_max']:.0f} ms\n"
        f"  start error vs start_at    mean {result['start_error_ms_mean']:+.1f} ms, "
        f"max |err| {result['start_error_ms_max_abs']:.1f} ms\n"
        f"  spread across stations     max {result['spread_ms_max']:.1f} ms\n"
        f"  proof of play stored       median {result['proof_after_end_ms_median']:.0f} ms after the end"
    )


def run(args: Any) -> int:
    if args.bench == "ingest":
        from benchmarks.ingest import bench_backend, print_ingest

        rates = [int(r) for r in args.rates.split(",")]
        backends = [("sqlite", None)] if "sqlite" in args.backends else []
        if "postgres" in args.backends:
            backends.append(("postgresql", args.postgres_url))

        async def _all() -> list[dict[str, Any]]:
            out = []
            for label, url in backends:
                with tempfile.TemporaryDirectory() as tmp:
                    db_url, drop = url or f"sqlite:///{Path(tmp) / 'ingest.db'}", None
                    if label == "postgresql":
                        db_url, drop = fresh_database(db_url)
                    try:
                        out.append(await bench_backend(db_url, label, rates, args.seconds, args.devices,
                                                       args.processes, args.climb, args.climb_max))
                    finally:
                        if drop:
                            drop()
            return out

        results = asyncio.run(_all())
        print_ingest(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    if args.bench == "broadcast":
        url, drop = args.database_url, None
        if url and url.startswith("postgresql"):
            url, drop = fresh_database(url)  # never migrate or seed the server's own database
        try:
            result = asyncio.run(bench_broadcast(args.devices, args.rounds, args.lead, url))
        finally:
            if drop:
                drop()
        print_broadcast(result)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
