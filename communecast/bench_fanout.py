"""`communecast bench fanout`: an emergency to N stations, against a bare MQTT baseline.

One run: a private broker, a controller process, a fleet of N simulated stations in this
process (firmware_sim/fleet.py). It sends one emergency to all N (POST /api/v1/broadcasts,
priority emergency) and measures, per station, request -> receipt of the signed PLAY (the
instant the station's MQTT client takes it off its socket: device_agents.common.link.ArrivalQueue)
and request -> sink start; the handling inside the agent (handler start -> item stored, signature
and replay check included, ack queued), the time each message waited for the CPU the simulated
stations share (a real station has its own) and the start error against the instant; the controller's
own request -> publish; request -> every ack recorded at the controller. Then, on the same
broker, N bare subscribers (same MQTT client library, no agent, receipt stamped the same
way) get one publish of a payload of the same size: the fan-out baseline the emergency is
compared to. docs/emergency.md, docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import logging
import math
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from sqlalchemy import func, select

from communecast.bench import _tone
from communecast.harness import CONTROLLER_USER, System, broker_dynsec_for
from device_agents.common.link import AgentLink, ArrivalQueue, arrived_at
from firmware_sim.audio_sink import Playback
from firmware_sim.fleet import Fleet, provision_fleet, raise_fd_limit, rss_bytes


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def stats_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    if not ms:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "n": 0}
    return {"p50": round(pct(ms, 0.5), 2), "p99": round(pct(ms, 0.99), 2), "max": round(max(ms), 2),
            "n": len(ms)}


@dataclass
class ReceiptProbe:
    """Wraps each fleet agent's message handler: when a command arrived and when it was handled."""

    received: dict[str, float] = field(default_factory=dict)  # uid -> first command off the socket
    waited: dict[str, float] = field(default_factory=dict)  # uid -> off the socket -> handler ran
    handled: dict[str, float] = field(default_factory=dict)
    fetched: dict[str, float] = field(default_factory=dict)  # uid -> media verified in the cache
    prepared: dict[str, float] = field(default_factory=dict)  # uid -> audio decoded, ready to start

    def attach(self, fleet: Fleet) -> None:
        for st in fleet.stations:
            link = st.agent.link
            link._on_message = self._wrap(st.uid, link)  # type: ignore[method-assign]
            st.agent.media.ensure = self._stamp(st.uid, st.agent.media.ensure, self.fetched)  # type: ignore
            st.sink.prepare = self._stamp(st.uid, st.sink.prepare, self.prepared)  # type: ignore

    @staticmethod
    def _stamp(uid: str, inner: Callable[..., Awaitable[Any]], into: dict[str, float]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            out = await inner(*args, **kwargs)
            into[uid] = time.time()
            return out

        return call

    def reset(self) -> None:
        self.received.clear()
        self.waited.clear()
        self.handled.clear()

    def _wrap(self, uid: str, link: AgentLink) -> Callable[[str, bytes], Awaitable[None]]:
        inner = link._on_message
        async def handler(topic: str, payload: bytes) -> None:
            arrived, t = link.last_arrival, time.time()
            await inner(topic, payload)
            if topic.endswith("/cmd") and uid not in self.received:
                self.received[uid] = arrived
                self.waited[uid] = t - arrived
                self.handled[uid] = time.time()

        return handler


def emergency_playback(fleet_station: Any, sha: str) -> Playback | None:
    return next((p for p in fleet_station.sink.playbacks if any(sha in f for f in p.files)), None)


async def wait_emergency_played(
    fleet: Fleet, match: Callable[[Playback], bool], timeout: float
) -> list[Playback]:
    """Every station's playback matching `match` (a sink records one when it ends or is stopped)."""

    async def one(st: Any) -> Playback | None:
        with contextlib.suppress(TimeoutError):
            return await st.sink.wait_for(match, timeout=timeout)
        return None

    return [p for p in await asyncio.gather(*(one(st) for st in fleet.stations)) if p is not None]


def plays(sha: str, volume: int | None = None) -> Callable[[Playback], bool]:
    """A playback of the file `sha` (at `volume`, when given)."""
    return lambda p: any(sha in f for f in p.files) and (volume is None or p.volume == volume)


async def bare_baseline(port: int, password: str, n: int, payload_size: int) -> dict[str, Any]:
    """N bare subscribers (aiomqtt, as the agents use) on one topic; one QoS 1 publish."""
    topic = f"cc/v1/bench/fanout/{secrets.token_hex(3)}"
    received: list[float] = []
    ready = 0
    all_ready = asyncio.Event()
    done = asyncio.Event()

    async def sub(i: int) -> None:
        nonlocal ready
        async with aiomqtt.Client("127.0.0.1", port, username=CONTROLLER_USER, password=password,
                                  identifier=f"bench-bare-{i}-{secrets.token_hex(2)}", timeout=60,
                                  queue_type=ArrivalQueue) as c:
            await c.subscribe(topic, qos=1)
            ready += 1
            if ready == n:
                all_ready.set()
            async for message in c.messages:
                received.append(arrived_at(message))
                if len(received) == n:
                    done.set()
                return

    tasks = []
    for start in range(0, n, 200):  # connect in waves, like the fleet
        tasks += [asyncio.create_task(sub(i)) for i in range(start, min(n, start + 200))]
        await asyncio.sleep(0.05)
    try:
        async with asyncio.timeout(300):
            await all_ready.wait()
        async with aiomqtt.Client("127.0.0.1", port, username=CONTROLLER_USER, password=password,
                                  identifier=f"bench-bare-pub-{secrets.token_hex(2)}") as pub:
            t0 = time.time()
            await pub.publish(topic, b"x" * payload_size, qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    await done.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    lat = [r - t0 for r in received]
    return {"subscribers": n, "received": len(received), "latency_ms": stats_ms(lat)}


@contextlib.asynccontextmanager
async def operator_client(system: System) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in client with its connection already open, as an operator's panel has: the
    measured request then starts when the operator sends, not when a client is being built."""
    assert system._api is not None
    async with httpx.AsyncClient(base_url=system.base_url, timeout=60,
                                 headers={"Authorization": f"Bearer {system._api.token}"}) as http:
        (await http.get("/api/v1/broadcasts?limit=1")).raise_for_status()
        yield http


def _acks_stored_at(url: str, item_id: str) -> list[float]:
    """When the controller stored each ack of the item (its own clock: DeviceEvent.received_at)."""
    from controller.db.models import DeviceEvent
    from controller.db.session import Database

    db = Database(url)
    try:
        with db.session() as s:
            return [t.timestamp() for t in s.scalars(select(DeviceEvent.received_at).where(
                DeviceEvent.kind == "ack", DeviceEvent.item_id == item_id))]
    finally:
        db.dispose()


def _acked_count(db: Any, bc_id: int) -> int:
    from controller.db.models import Delivery

    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.broadcast_id == bc_id, Delivery.acked_at.is_not(None))) or 0)


async def _all_acked(system: System, bc_id: int, n: int, timeout: float) -> tuple[float | None, int]:
    """When the controller's Delivery rows show every ack, read from the database: polling
    GET /broadcasts/{id} (10,000 station states each time) took the controller's CPU away from
    storing the very acks being waited for."""
    from controller.db.session import Database

    db = Database(system.database_url)
    deadline = time.monotonic() + timeout
    acked = 0
    try:
        while time.monotonic() < deadline:
            acked = await asyncio.to_thread(_acked_count, db, bc_id)
            if acked >= n:
                return time.time(), acked
            await asyncio.sleep(0.2)
        return None, acked
    finally:
        db.dispose()


async def preposition(system: System, fleet: Fleet, sha: str, *, timeout: float = 300) -> None:
    """Put the clip in every station's cache (as the emergency kit would) and drill it once, so the
    controller knows the stations hold it (docs/emergency.md, "audio on the stations")."""
    stored = system.root / "controller" / "media" / sha[:2] / f"{sha}.opus"
    for st in fleet.stations:
        shutil.copyfile(stored, st.agent.media.path_for(sha))
    lead = 3 + len(fleet.stations) / 500
    drill = await system.api_json("POST", "/api/v1/broadcasts", json={
        "title": "Diễn tập", "media_sha256": sha, "targets": {"all": True},
        "start_at": (datetime.now(UTC) + timedelta(seconds=lead)).isoformat()})  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await system.api_json("GET", f"/api/v1/play-log?broadcast_id={drill['id']}&status=played"
                                     f"&limit=100000")
        if len(rows) >= len(fleet.stations):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("the drill did not play everywhere")


async def _one_emergency(
    system: System, fleet: Fleet, probe: ReceiptProbe, sha: str, profile: Path | None = None
) -> dict[str, Any]:
    """Send one emergency to all and measure it (the sinks record each playback when it ends)."""
    devices = len(fleet.stations)
    probe.reset()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    async with operator_client(system) as http:
        t_req = time.time()
        r = await http.post("/api/v1/broadcasts", json={
            "title": "Cảnh báo khẩn cấp (bench)", "media_sha256": sha, "targets": {"all": True},
            "priority": "emergency"})  # fmt: skip
        t_resp = time.time()
    if r.status_code != 201:
        raise RuntimeError(f"emergency refused: {r.status_code} {r.text}")
    bc = r.json()
    played, (t_ack, acked) = await asyncio.gather(  # acks are polled while it plays
        wait_emergency_played(fleet, lambda p: plays(sha, volume=100)(p) and p.requested_start > t_req,
                              timeout=120),
        _all_acked(system, bc["id"], devices, timeout=60))
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    ack_stored = await asyncio.to_thread(_acks_stored_at, system.database_url, f"b{bc['id']}")
    detail = await system.api_json("GET", f"/api/v1/broadcasts/{bc['id']}")
    start_at = datetime_ts(bc["start_at"])
    receipt = [probe.received[u] - t_req for u in probe.received]
    handling = [probe.handled[u] - probe.received[u] - probe.waited[u] for u in probe.received]
    median = statistics.median(p.started_at for p in played) if played else math.nan
    rec = stats_ms(receipt)
    return {
        "p50_ms": rec["p50"], "p99_ms": rec["p99"], "max_ms": rec["max"], "received": rec["n"],
        "sink_start_ms": stats_ms([p.started_at - t_req for p in played]), "started": len(played),
        "start_error_ms": stats_ms([p.started_at - start_at for p in played]),
        "skew_ms": stats_ms([abs(p.started_at - median) for p in played]),
        "handling_p99_ms": stats_ms(handling)["p99"], "handling_ms": stats_ms(handling),
        "cpu_wait_ms": stats_ms(list(probe.waited.values())),
        "media_fetched_ms": stats_ms([t - t_req for t in probe.fetched.values()]),
        "audio_prepared_ms": stats_ms([t - t_req for t in probe.prepared.values()]),
        "acked": len(ack_stored),
        "ack_all_ms": round((max(ack_stored) - t_req) * 1000, 1) if len(ack_stored) >= devices else None,
        "ack_stored_ms": stats_ms([a - t_req for a in ack_stored]),
        "ack_all_seen_ms": round((t_ack - t_req) * 1000, 1) if t_ack else None, "acked_rows": acked,
        "post_ms": round((t_resp - t_req) * 1000, 1),
        "publish_ms": detail["emergency"]["publish_ms"],
        "broker_ack_ms": detail["emergency"]["broker_ack_ms"], "lead_ms": detail["emergency"]["lead_ms"],
        "lead_basis": detail["emergency"]["lead_basis"], "topics": detail["emergency"]["topics"],
        "controller_skew": detail["skew"],
    }  # fmt: skip


async def bench_fanout(
    devices: int, database_url: str | None, *, held: bool = True, rounds: int = 2,
    profile: Path | None = None,
) -> dict[str, Any]:
    """`rounds` emergencies one after the other: the first with the default lead, the next with
    the lead the controller learnt from the one before. The last round is the headline."""
    raise_fd_limit(8 * devices + 512)
    with tempfile.TemporaryDirectory(prefix="cc-bench-fanout-") as tmp:
        root = Path(tmp)
        system = System(root / "system", database_url or f"sqlite:///{root / 'bench.db'}",
                        broker_dynsec=broker_dynsec_for(devices))
        await system.start()
        fleet: Fleet | None = None
        runs: list[dict[str, Any]] = []
        try:
            assert system._api is not None
            configs = await provision_fleet(system.base_url, system._api.token, devices, root / "fleet")
            fleet = Fleet(configs)
            fleet_start_s = await fleet.start(connect_timeout=600)
            probe = ReceiptProbe()
            probe.attach(fleet)
            with _tone(root / "siren.wav", 3.0).open("rb") as fh:
                media = (await system.api("POST", "/api/v1/media", files={"file": ("siren.wav", fh)})).json()
            if held:
                await preposition(system, fleet, media["sha256"])
            await asyncio.sleep(1.0)  # let births and first state settle
            for i in range(rounds):
                runs.append(await _one_emergency(system, fleet, probe, media["sha256"],
                                                 profile if i == rounds - 1 else None))
                await asyncio.sleep(1.0)
            rss_mb = round(rss_bytes() / 2**20, 1)
        finally:
            if fleet is not None:
                await fleet.stop()
        try:
            baseline = await bare_baseline(system.broker.port, system.mqtt_password, devices, 1500)
        finally:
            await system.stop()
    base_p99 = baseline["latency_ms"]["p99"]
    last = runs[-1]
    return {
        "devices": devices,
        "database": "postgresql" if database_url and "postgres" in database_url else "sqlite",
        "broker_accounts": "dynamic-security" if system.broker.dynsec else "password/ACL files",
        "audio": "held" if held else "fresh",
        **last,
        "baseline_p99_ms": base_p99, "baseline": baseline,
        "ratio_p99": round(last["p99_ms"] / base_p99, 2) if base_p99 and base_p99 > 0 else None,
        "fleet_start_s": round(fleet_start_s, 1), "fleet_rss_mb": rss_mb,
        "rounds": [{k: r[k] for k in ("lead_ms", "lead_basis", "p99_ms", "publish_ms", "ack_all_ms")}
                   | {"sink_start_p99_ms": r["sink_start_ms"]["p99"], "skew_p99_ms": r["skew_ms"]["p99"],
                      "start_error_p99_ms": r["start_error_ms"]["p99"]} for r in runs],
    }  # fmt: skip


def datetime_ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def print_fanout(r: dict[str, Any]) -> None:
    s, e, k = r["sink_start_ms"], r["start_error_ms"], r["skew_ms"]
    print(f"bench fanout: one emergency to {r['devices']} stations ({r['database']}, audio {r['audio']}, "
          f"broker accounts in {r['broker_accounts']}), {len(r['topics'])} topic(s) {r['topics'][:3]}")
    print(f"  request -> PLAY received:  p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms "
          f"({r['received']} stations)")
    print(f"  bare MQTT baseline:        p99 {r['baseline_p99_ms']} ms ({r['baseline']['received']} "
          f"subscribers) -> ratio {r['ratio_p99']}")
    print(f"  controller request->publish {r['publish_ms']} ms (-> broker's PUBACK, after it queued the PLAY "
          f"for every subscriber: {r['broker_ack_ms']} ms); POST answered in {r['post_ms']} ms; "
          f"lead {r['lead_ms']} ms ({r['lead_basis']})")
    w = r["cpu_wait_ms"]
    print("  station handling (handler start -> stored, signature checked, ack queued): "
          f"p99 {r['handling_p99_ms']} ms")
    print(f"  waiting for the fleet's shared CPU (off the socket -> handler start): p50 {w['p50']} ms, "
          f"p99 {w['p99']} ms (a real station has its own CPU)")
    print(f"  request -> media fetched: p99 {r['media_fetched_ms']['p99']} ms; -> audio prepared: "
          f"p99 {r['audio_prepared_ms']['p99']} ms")
    print(f"  request -> sink start:     p50 {s['p50']} ms, p99 {s['p99']} ms, max {s['max']} ms "
          f"({r['started']} started)")
    print(f"  start error vs instant:    p50 {e['p50']} ms, p99 {e['p99']} ms; skew p99 {k['p99']} ms, "
          f"max {k['max']} ms")
    print(f"  acks stored: {r['acked']}/{r['devices']}, all in {r['ack_all_ms']} ms (p50 "
          f"{r['ack_stored_ms']['p50']} ms; all Delivery rows acked when polled: {r['ack_all_seen_ms']} ms)")
    print(f"  fleet RSS {r['fleet_rss_mb']} MB")
    for i, rd in enumerate(r["rounds"], 1):
        print(f"  round {i}: lead {rd['lead_ms']} ms ({rd['lead_basis']}); sink start p99 "
              f"{rd['sink_start_p99_ms']} ms, start error p99 {rd['start_error_p99_ms']} ms, skew p99 "
              f"{rd['skew_p99_ms']} ms, receipt p99 {rd['p99_ms']} ms, publish {rd['publish_ms']} ms")


def run(args: Any) -> int:
    from communecast.pgtemp import fresh_database

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per media download otherwise

    url, drop = args.database_url, None
    if url and url.startswith("postgresql"):
        url, drop = fresh_database(url)
    try:
        result = asyncio.run(bench_fanout(args.devices, url, held=args.audio == "held", rounds=args.rounds,
                                          profile=Path(args.profile) if args.profile else None))
    finally:
        if drop:
            drop()
    print_fanout(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
