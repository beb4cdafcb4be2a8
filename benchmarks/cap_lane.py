"""`communecast bench cap-lane`: does a CAP alert still air at once while long uploads are processed?

Issue 16 item 3: two hour-long uploads held both audio-pipeline slots and a CAP Extreme alert
took 83.8 s to air (0.8 s idle). This runs a private broker, a controller process and one
simulated station, then measures POST /api/v1/cap (Extreme, Immediate, Observed: an emergency)
-> the station's sink starting to play it, `--rounds` times on the idle controller and again
while two `--upload-minutes` uploads are in flight (their ffmpeg seen running under the
controller). The alert's speech is synthesized and normalized on every round: that is the path
that used to wait. The controller is started with its length limit and job deadline raised so
the long uploads are accepted and stay in the ordinary lane for the whole measurement (with the
defaults an hour-long upload is refused after its probe, in milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from testkit.harness import Station, System

CAP = {"Content-Type": "application/cap+xml"}


def _alert(identifier: str) -> bytes:
    sent = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>bench@kttv.gov.vn</sender><sent>{sent}</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info>
    <language>vi-VN</language><category>Met</category><event>Lũ quét</event>
    <urgency>Immediate</urgency><severity>Extreme</severity><certainty>Observed</certainty>
    <headline>Cảnh báo lũ quét khẩn cấp</headline>
    <instruction>Người dân di chuyển ngay lên vùng cao.</instruction>
    <area><areaDesc>Xã Hợp Hòa, huyện Tam Dương</areaDesc></area>
  </info>
</alert>""".encode()


def long_upload_file(path: Path, minutes: float) -> Path:
    """A long, small Opus file (an hour is ~2.7 MB), as in the issue's 2.5 MB hour."""
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"sine=frequency=440:sample_rate=16000:duration={minutes * 60}", "-ac", "1",
                    "-c:a", "libopus", "-b:a", "6k", str(path)], check=True)  # fmt: skip
    return path


def ffmpeg_under(pid: int) -> list[int]:
    """ffmpeg processes whose parent is `pid` (the controller's pipeline jobs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name == "ffmpeg" and int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


async def _wait(check: Any, timeout: float, what: str, interval: float = 0.005) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench cap-lane: {what} not reached in {timeout:.0f} s")
        await asyncio.sleep(interval)
    return time.monotonic()


async def _one_alert(system: System, station: Station, label: str) -> float:
    """POST one Extreme alert; seconds until the station plays it. Then stop it (not timed)."""
    sink = station.sink
    before = len(sink.playbacks)
    t0 = time.monotonic()
    r = await system.api("POST", "/api/v1/cap", content=_alert(f"BENCH-{label}-{uuid.uuid4().hex[:8]}"),
                         headers=CAP)  # fmt: skip
    if r.status_code != 201 or r.json().get("outcome") != "aired":
        raise RuntimeError(f"the alert did not air: {r.status_code} {r.text}")
    posted = time.monotonic()
    on_air = await _wait(lambda: sink.playing, 120, "the alert on air")
    if os.environ.get("COMMUNECAST_BENCH_DEBUG"):
        print(
            f"  {label}: POST answered in {(posted - t0) * 1000:.0f} ms, on air {(on_air - t0) * 1000:.0f} ms"
        )
    await system.api_json("POST", f"/api/v1/broadcasts/{r.json()['broadcast_id']}/cancel")
    await _wait(lambda: not sink.playing and len(sink.playbacks) > before, 30, "the alert stopped", 0.02)
    return on_air - t0


async def _upload(system: System, name: str, data: bytes) -> httpx.Response:
    return await system.api("POST", "/api/v1/media", files={"file": (name, data)})


async def bench_cap_lane(rounds: int, upload_minutes: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cc-bench-cap-") as tmp:
        root = Path(tmp)
        limit_s = upload_minutes * 60 * 2
        system = System(
            root / "system",
            f"sqlite:///{root / 'bench.db'}",
            controller_env={
                "COMMUNECAST_MEDIA_MAX_DURATION_S": str(limit_s),
                "COMMUNECAST_MEDIA_JOB_TIMEOUT_S": str(limit_s),
            },
        )
        await system.start()
        uploads: list[asyncio.Task[httpx.Response]] = []
        try:
            (station,) = await system.add_stations(1)
            deadline = time.monotonic() + 60
            while not all(d["online"] for d in await system.api_json("GET", "/api/v1/devices")):
                if time.monotonic() > deadline:
                    raise TimeoutError("bench cap-lane: the station did not come online")
                await asyncio.sleep(0.05)
            idle = [await _one_alert(system, station, f"idle-{i}") for i in range(rounds)]

            big = long_upload_file(root / "hour.opus", upload_minutes)
            data = big.read_bytes()
            uploads = [asyncio.create_task(_upload(system, f"long-{i}.opus", data)) for i in range(2)]
            assert system.controller.proc is not None
            pid = system.controller.proc.pid
            await _wait(lambda: len(ffmpeg_under(pid)) >= 2, 60, "both uploads in ffmpeg", 0.05)
            loaded, in_flight = [], []
            for i in range(rounds):
                loaded.append(await _one_alert(system, station, f"loaded-{i}"))
                in_flight.append(sum(not u.done() for u in uploads))
        finally:
            for u in uploads:
                u.cancel()
            if system.controller.proc is not None:  # the pipeline's ffmpeg would outlive the controller
                for child in ffmpeg_under(system.controller.proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
            await asyncio.gather(*uploads, return_exceptions=True)
            await system.stop()
    idle_p50, loaded_p50 = statistics.median(idle) * 1000, statistics.median(loaded) * 1000
    return {
        "rounds": rounds,
        "upload_minutes": upload_minutes,
        "idle_p50_ms": round(idle_p50, 1),
        "loaded_p50_ms": round(loaded_p50, 1),
        "difference_ms": round(loaded_p50 - idle_p50, 1),
        "idle_ms": [round(s * 1000, 1) for s in idle],
        "loaded_ms": [round(s * 1000, 1) for s in loaded],
        "uploads_in_flight": in_flight,  # after each loaded round: 2 = both still being processed
    }


def print_cap_lane(r: dict[str, Any]) -> None:
    print(
        f"bench cap-lane: CAP Extreme alert, POST -> on air at the station, {r['rounds']} rounds each\n"
        f"  idle controller                          p50 {r['idle_p50_ms']:.0f} ms  {r['idle_ms']}\n"
        f"  two {r['upload_minutes']:g}-minute uploads in flight      p50 {r['loaded_p50_ms']:.0f} ms  "
        f"{r['loaded_ms']} (uploads still in flight after each round: {r['uploads_in_flight']})\n"
        f"  difference                               {r['difference_ms']:+.0f} ms"
    )


def run(args: Any) -> int:
    result = asyncio.run(bench_cap_lane(args.rounds, args.upload_minutes))
    print_cap_lane(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
