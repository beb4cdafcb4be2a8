"""`communecast bench agent`: one speaker agent on a Raspberry-Pi budget (issue 21).

A real controller (SQLite) and broker (testkit.harness.System) and ONE station agent in a
process of its own (benchmarks/agent_process.py: the real agent, its real Modbus driver on the
cabinet simulator's pty, its real decoder: opusdec or ffmpeg), capped by a cgroup at
`--cpu-fraction` of one core (benchmarks/cpu_quota.py). It measures what the Pi's budget is about:

- RSS of the agent's process tree (its decoder included) at idle and at its peak while playing
  (TreeRss: each process once, a decoder's own high-water mark between samples);
- CPU per bulletin: the tree's CPU time from the request to the end of the sound, minus what
  it spends idle over the same time;
- handling p99: a controller message off the socket -> signature checked, stored, ack queued;
- per bulletin, for an emergency whose audio the station has never fetched: request -> the
  station decoded it (ready_ms), request -> sound (play_latency_ms, which includes the lead the
  controller chose), and the sound's start against the instant it was scheduled for.

Calibrating the quota: `--calibrate` times a reference workload (opening 300 signed
desired-state envelopes, the agent's hot path) on this machine with and without the cap. Run
`communecast bench agent --calibrate --cpu-fraction 1` on the real board: the fraction that
makes this machine as slow as the board is (this machine's uncapped ms) / (the board's ms).
Without a board at hand the default 0.1 is an assumption, said so in the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.cpu_quota import CpuQuota
from communecast.stations import ApiClient, provision
from firmware_sim.station import SimStationHardware
from testkit.api import Api
from testkit.harness import System
from testkit.waiting import eventually

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]
RSS_BUDGET_MB = 60.0  # issue 21: a Pi Zero 2 W class board (512 MB) runs more than the agent


# -- the process tree ------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree(pid: int) -> list[int]:
    return [p for p, _ in _tree(pid)]


def _tree(pid: int) -> list[tuple[int, int | None]]:
    """(pid, its parent's pid) for the process and all its descendants."""
    pids: list[tuple[int, int | None]] = []
    frontier: list[tuple[int, int | None]] = [(pid, None)]
    while frontier:
        p, parent = frontier.pop()
        pids.append((p, parent))
        frontier += [(c, p) for c in _children(p)]
    return pids


def _image(pid: int) -> tuple[str, bytes] | None:
    try:
        return os.readlink(f"/proc/{pid}/exe"), Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class TreeRss:
    """RSS of a process tree, each process once.

    A child between fork and exec (the agent starting a decoder or aplay) still runs its parent's
    program on its parent's pages: with vfork literally the same memory, with fork shared
    copy-on-write. /proc shows it with its parent's whole VmRSS; adding that would count the agent
    twice (under a 0.1-core quota a throttled child can sit there for most of a 100 ms CFS period,
    so a 50 ms sampler catches it: 121 MB "peaks" that were 2 x 60 MB). Such a child counts 0 and
    is tallied in `pre_exec_seen`. A child that has exec'd counts with its VmHWM when `peak`: its
    own high-water mark, so a decoder's spike between two samples is not missed."""

    pre_exec_seen: int = 0

    def mb(self, pid: int, *, peak: bool = False) -> float:
        total = 0
        for p, parent in _tree(pid):
            if parent is not None:
                image = _image(p)
                if image is None:
                    continue
                if image == _image(parent):
                    self.pre_exec_seen += 1
                    continue
            total += _kb(p, "VmHWM:" if peak and parent is not None else "VmRSS:")
        return total / 1024


def tree_rss_mb(pid: int) -> float:
    return TreeRss().mb(pid)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of the process, its reaped children (ffmpeg runs that ended) and its live ones."""
    total = 0.0
    for i, p in enumerate(tree(pid)):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if i == 0 else 0)
    return total / CLK_TCK


# -- calibration ---------------------------------------------------------------------------------------
def reference() -> float:
    """Milliseconds to open 300 signed desired-state envelopes (JSON, Ed25519, pydantic)."""
    from protocol import topics
    from protocol.envelope import Envelope, SignedMessage, open_message
    from protocol.messages import CommandKind
    from protocol.signing import KeyPair, Signer, Verifier

    keys = KeyPair.generate()
    target = topics.target_of(topics.desired("st-ref"))
    body = {"version": 1, "volume": 70, "schedule": [
        {"item_id": f"i{i}", "broadcast_id": i, "title": "Thông báo", "start_at": "2026-12-06T10:00:00+07:00",
         "priority": "normal", "media": [{"sha256": "a" * 64, "size": 1000, "duration_s": 20.0}]}
        for i in range(20)]}  # fmt: skip
    raw = SignedMessage.seal(Envelope.new(CommandKind.DESIRED_STATE, target, body, ttl=timedelta(days=1)),
                             Signer(keys)).to_bytes()  # fmt: skip
    verifier = Verifier([keys.public])
    t0 = time.perf_counter()
    for _ in range(300):
        open_message(raw, verifier, allowed_targets=frozenset({target}))
    return (time.perf_counter() - t0) * 1000


def _reference_in(quota: CpuQuota | None) -> float:
    code = "from benchmarks.agent import reference; print(reference())"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, text=True)
    if quota is not None:
        quota.add(proc.pid)
    out, _ = proc.communicate(timeout=300)
    return round(float(out.strip()), 1)


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


# -- the run -----------------------------------------------------------------------------------------
def _mp3(path: Path, freq: int, seconds: float) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"sine=frequency={freq}:duration={seconds}", "-ac", "1", "-b:a", "64k", str(path)],
                   check=True)  # fmt: skip
    return path


async def _wait_for_line(stream: Any, line: str, timeout: float) -> bool:
    """True once `line` comes on `stream`; False at EOF or after `timeout` s."""

    def read() -> bool:
        return any(got.strip() == line for got in stream)

    try:
        return await asyncio.wait_for(asyncio.to_thread(read), timeout)
    except TimeoutError:
        return False  # the thread ends at the agent's EOF


def _playbacks(journal: Path) -> list[dict[str, Any]]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))], 2)


async def bench_agent(rounds: int, seconds: float, fraction: float, idle_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cc-bench-agent-") as tmp:
        root = Path(tmp)
        system = System(root / "system", f"sqlite:///{root / 'bench.db'}")
        cabinet = SimStationHardware(transport="pty", state_dir=root / "cabinet")
        quota: CpuQuota | None = None
        quota_note = f"{fraction:g} of one core (CFS quota)"
        proc: subprocess.Popen[str] | None = None
        try:
            try:
                quota = CpuQuota.create(f"communecast-bench-{os.getpid()}", fraction)
            except OSError as exc:
                quota_note = f"NOT APPLIED ({exc}): figures are for an uncapped agent"
            await system.start()
            await cabinet.start()
            client = await ApiClient.login(system.base_url, "admin", system.admin_password)
            [cfg] = await provision(client, 1, root / "stations")
            out = root / "agent.json"
            proc = subprocess.Popen([sys.executable, "-m", "benchmarks.agent_process", "--config",  # noqa: ASYNC220
                                     str(cfg.data_dir / "config.json"), "--modbus", cabinet.modbus_url,
                                     "--out", str(out)],
                                    cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True)  # fmt: skip
            if quota is not None:
                quota.add(proc.pid)
            api = Api.of(system)

            async def online() -> bool:
                return bool((await api.json("GET", "/api/v1/devices"))[0]["online"])

            await eventually(online, bool, timeout=60, what="the agent online")
            assert proc.stdout is not None
            # Start-up's one-offs (the first clock probe, 0.5-20 s after start) are not idle.
            settled = await _wait_for_line(proc.stdout, "settled", 30.0)
            await asyncio.sleep(idle_s / 2)  # settle: the first telemetry
            idle: list[float] = []
            cpu0, t0 = tree_cpu_s(proc.pid), time.monotonic()
            while time.monotonic() - t0 < idle_s:
                idle.append(tree_rss_mb(proc.pid))
                await asyncio.sleep(0.1)
            idle_rate = (tree_cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)

            journal = cfg.data_dir / "sim" / "playbacks.jsonl"
            per: list[dict[str, Any]] = []
            peak = 0.0
            rss = TreeRss()
            for i in range(rounds):  # fresh audio each time: fetched and decoded under the cap
                media = await api.upload(_mp3(root / f"b{i}.mp3", 300 + 40 * i, seconds))
                had = len(_playbacks(journal))
                cpu_a, ta = tree_cpu_s(proc.pid), time.monotonic()
                requested = time.time()
                r = await api.json("POST", "/api/v1/broadcasts", json={
                    "title": f"Cảnh báo {i + 1}", "priority": "emergency", "media_sha256": media["sha256"],
                    "targets": {"all": True}, "text": "Cảnh báo lũ"})  # fmt: skip
                deadline = time.monotonic() + seconds + 60
                while len(_playbacks(journal)) <= had and time.monotonic() < deadline:
                    peak = max(peak, rss.mb(proc.pid, peak=True))
                    await asyncio.sleep(0.05)
                played = _playbacks(journal)[had:]
                cpu_s = tree_cpu_s(proc.pid) - cpu_a - idle_rate * (time.monotonic() - ta)
                start_at = datetime.fromisoformat(r["start_at"]).timestamp() if r.get("start_at") else None
                p = played[0] if played else None
                per.append({
                    "requested": requested,
                    "played": bool(p and p.get("completed")),
                    "cpu_ms": round(cpu_s * 1000, 1),
                    "play_latency_ms": round((p["started_at"] - requested) * 1000, 1) if p else None,
                    "start_error_ms": (round((p["started_at"] - start_at) * 1000, 2)
                                       if p and start_at else None),
                    "lead_ms": (r.get("emergency") or {}).get("lead_ms"),
                })  # fmt: skip
                await asyncio.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 60)
            seen = json.loads(out.read_text())
            handling = [(m["handled"] - m["arrived"]) * 1000 for m in seen["messages"]]
            for row in per:  # request -> the audio decoded and ready (the first decode after it)
                ready = [t for t in seen["prepared"] if t >= row["requested"]]
                row["ready_ms"] = round((min(ready) - row.pop("requested")) * 1000, 1) if ready else None
            played_ok = [r for r in per if r["played"]]
            return {
                "rounds": rounds, "audio_s": seconds, "played": len(played_ok),
                "cpu_quota": quota_note, "settled": settled,
                "throttled_s": round(quota.throttled_s(), 2) if quota else None,
                "rss_idle_mb": round(statistics.median(idle), 1),
                "rss_playing_mb": round(peak, 1), "rss_budget_mb": RSS_BUDGET_MB,
                "rss_pre_exec_seen": rss.pre_exec_seen,
                "cpu_idle_pct": round(idle_rate * 100, 2),
                "cpu_ms_per_bulletin": round(statistics.median(r["cpu_ms"] for r in per), 1),
                "handling_p50_ms": _pct(handling, 0.5), "handling_p99_ms": _pct(handling, 0.99),
                "handled_messages": len(handling),
                "play_latency_ms": round(statistics.median(r["play_latency_ms"] for r in played_ok), 1)
                if played_ok else None,
                "bulletins": per,
            }  # fmt: skip
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            await system.stop()
            await cabinet.close()
            if quota is not None:
                quota.remove()


def run(args: Any) -> int:
    if args.calibrate:
        quota: CpuQuota | None = None
        try:
            quota = CpuQuota.create(f"communecast-calibrate-{os.getpid()}", args.cpu_fraction)
        except OSError as exc:
            print(f"no CPU quota here: {exc}")
        try:
            free = _reference_in(None)
            capped = _reference_in(quota) if quota else None
        finally:
            if quota is not None:
                quota.remove()
        result: dict[str, Any] = {"reference_ms": free, "reference_capped_ms": capped,
                                  "cpu_fraction": args.cpu_fraction}
        print(f"reference workload (300 signed envelopes opened): {free} ms uncapped"
              + (f", {capped} ms at {args.cpu_fraction:g} of a core" if capped else ""))
        print("on the target board run the same with --cpu-fraction 1; fraction = this machine's "
              "uncapped ms / the board's ms")
    else:
        result = asyncio.run(bench_agent(args.rounds, args.seconds, args.cpu_fraction, args.idle_seconds))
        print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def report(r: dict[str, Any]) -> str:
    return (
        f"one speaker agent, CPU quota: {r['cpu_quota']} (throttled {r['throttled_s']} s)\n"
        f"  RSS idle {r['rss_idle_mb']} MB, while playing {r['rss_playing_mb']} MB "
        f"(budget {r['rss_budget_mb']:g} MB, decoder children included)\n"
        f"  a child caught between fork and exec (the agent's own pages, counted once): "
        f"{r.get('rss_pre_exec_seen', 0)} samples\n"
        f"  CPU idle {r['cpu_idle_pct']} % of a core; per {r['audio_s']:g} s bulletin (fetch, decode, play) "
        f"{r['cpu_ms_per_bulletin']} ms\n"
        f"  handling (off the socket -> verified, stored, ack queued) p50 {r['handling_p50_ms']} ms, "
        f"p99 {r['handling_p99_ms']} ms over {r['handled_messages']} messages\n"
        f"  emergency with never-fetched audio: request -> sound p50 {r['play_latency_ms']} ms "
        f"({r['played']}/{r['rounds']} played)\n"
        + "".join(f"    {i + 1}: decoded {b['ready_ms']} ms, sound {b['play_latency_ms']} ms after the "
                  f"request (lead {b['lead_ms']} ms), start error {b['start_error_ms']} ms, "
                  f"CPU {b['cpu_ms']} ms\n"
                  for i, b in enumerate(r["bulletins"]))
    )
