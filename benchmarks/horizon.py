"""`communecast bench horizon` (issue 8): everyone's desired-state horizon, computed and published.

Seeds N speaker stations in M communes (D groups of communes, the former districts) and
four daily schedules per station (05:30 and 17:00 per group, 11:00 and 20:00 per commune, as
provinces run them), then times what a horizon roll costs: (a) building every desired state from the database,
(b) the Ed25519 signatures inside it, (c) publishing them retained, QoS 1, to a real
Mosquitto. The same batches as `DesiredStatePublisher` (desired_state.BATCH) are used;
then the real publisher drains the durable queue for all N as the end-to-end figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
from sqlalchemy import insert, select

from communecast.mosquitto import PrivateMosquitto, free_port
from controller import horizon_sources
from controller.db.models import Area, AreaGroupMember, Device, Media
from controller.db.models_schedules import Schedule
from controller.db.session import Database
from controller.mqtt.bus import MqttBus
from controller.services import desired_state, dispatch, schedule_horizon
from protocol import topics
from protocol.envelope import SignedMessage
from protocol.signing import KeyPair, Signer, b64u_decode
from testkit.harness import CONTROLLER_USER
from testkit.pgtemp import fresh_database

TARGET_S = 10.0
SLOTS = (("05:30", "group", "Bản tin sáng"), ("11:00", "commune", "Thông tin trưa"),
         ("17:00", "group", "Bản tin chiều"), ("20:00", "commune", "Thông báo tối"))


class TimingSigner(Signer):
    """A Signer that adds up the time spent in Ed25519 signing (phase b)."""

    def __init__(self, keys: KeyPair) -> None:
        super().__init__(keys)
        self.seconds = 0.0
        self.count = 0

    def sign_as(self, payload: bytes) -> tuple[str, str]:
        t0 = time.perf_counter()
        try:
            return super().sign_as(payload)
        finally:
            self.seconds += time.perf_counter() - t0
            self.count += 1


def seed(db: Database, stations: int, communes: int, districts: int) -> dict[str, int]:
    """Areas, stations and 2·districts + 2·communes daily schedules, in bulk inserts."""
    with db.session() as s:
        province = Area(level="province", name="Tỉnh Phú Thọ", code="bench-p")
        s.add(province)
        s.flush()
        # "districts" are groups of communes since the two-tier reform (docs/areas.md)
        s.execute(insert(Area), [{"level": "group", "name": f"Khu vực {i + 1}", "code": f"bench-d{i}",
                                  "parent_id": province.id, "former_names": []} for i in range(districts)])
        d_ids = list(s.scalars(select(Area.id).where(Area.level == "group").order_by(Area.id)))
        s.execute(insert(Area), [{"level": "commune", "kind": "xa", "name": f"Xã {i + 1}",
                                  "code": f"bench-c{i}", "parent_id": province.id, "former_names": []}
                                 for i in range(communes)])
        c_ids = list(s.scalars(select(Area.id).where(Area.level == "commune").order_by(Area.id)))
        s.execute(insert(AreaGroupMember), [{"group_id": d_ids[i % districts], "commune_id": c}
                                            for i, c in enumerate(c_ids)])
        now = datetime.now(UTC)
        reported = {"online": True, "kind": "speaker", "agent_version": "0.4.0", "clock_offset_ms": 1.5,
                    "telemetry": {"ts": now.isoformat(), "uptime_s": 86400.0, "relay_on": False,
                                  "mains_v": 226.0, "amp_current_a": 0.12, "cabinet_temp_c": 36.5,
                                  "volume": 80, "extra": {}}}  # what a live station has stored
        s.execute(insert(Device), [{
            "uid": f"hz-{i:06d}", "name": f"Cụm loa {i + 1}", "kind": "speaker",
            "commune_id": c_ids[i % communes], "tags": ["loa-day"], "reported": reported, "online": True,
            "desired_version": 0, "created_at": now,
        } for i in range(stations)])  # fmt: skip
        shas = [hashlib.sha256(f"bench-horizon-{i}".encode()).hexdigest() for i in range(len(SLOTS))]
        s.execute(insert(Media), [{
            "sha256": sha, "original_name": f"{i}.opus", "content_type": "audio/ogg", "size": 240_000,
            "duration_s": 60.0, "codec": "opus", "source_sha256": sha, "created_at": now,
        } for i, sha in enumerate(shas)])  # fmt: skip
        rows = []
        for (at, level, title), sha in zip(SLOTS, shas, strict=True):
            for area in d_ids if level == "group" else c_ids:
                rows.append({
                    "title": title, "media": [sha], "duration_s": 60.0, "rrule": "FREQ=DAILY",
                    # created on different days, as real ones are (each expands on its own)
                    "dtstart": f"{date.today() - timedelta(days=30 + area % 300)}T{at}:00",
                    "until": None, "exdates": [],
                    "timezone": "Asia/Ho_Chi_Minh", "targets": {f"{level}s": [area]},
                    "priority": "normal", "status": "active", "created_at": now, "updated_at": now,
                })  # fmt: skip
        s.execute(insert(Schedule), rows)
    return {"stations": stations, "communes": communes, "districts": districts, "schedules": len(rows)}


async def _phases(db: Database, bus: MqttBus, signer: TimingSigner, ids: list[int],
                  horizon: timedelta, prof: Any = None) -> dict[str, Any]:
    """The publisher's own steps (build+sign in a worker thread, then publish), each timed.

    Starts with cold caches (schedule items and their JSON), as the first roll after a
    controller start does. The phases run one after the other, to time each; the publisher
    (the end-to-end figure) overlaps publishing a batch with building the next.
    """
    schedule_horizon.clear_cache()
    desired_state.clear_item_cache()
    build_s = publish_s = 0.0
    size = items = 0
    t_all, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, len(ids), desired_state.BATCH):
        chunk = ids[i:i + desired_state.BATCH]

        def _build(chunk: list[int] = chunk) -> list[desired_state.Outgoing]:
            if prof is not None:
                prof.enable()  # profiles this worker thread
            try:
                with db.session() as s:
                    return desired_state.build(s, chunk, signer, now=datetime.now(UTC), horizon=horizon,
                                               sources=horizon_sources.standard())
            finally:
                if prof is not None:
                    prof.disable()

        t0 = time.perf_counter()
        out = await asyncio.to_thread(_build)
        t1 = time.perf_counter()
        await asyncio.gather(*(bus.publish(o.topic, o.payload, qos=1, retain=True) for o in out))
        publish_s += time.perf_counter() - t1
        build_s += t1 - t0
        size += sum(len(o.payload) for o in out)
        if i == 0 and out:
            body = json.loads(b64u_decode(json.loads(out[0].payload)["payload"]))["body"]
            items = len(body["schedule"])
    total, cpu = time.perf_counter() - t_all, time.process_time() - cpu0
    return {
        "build_s": round(build_s - signer.seconds, 3), "sign_s": round(signer.seconds, 3),
        "build_and_sign_s": round(build_s, 3), "publish_s": round(publish_s, 3), "total_s": round(total, 3),
        "cpu_s": round(cpu, 3),
        "signatures": signer.count, "items_per_station": items,
        "avg_payload_kb": round(size / max(len(ids), 1) / 1024, 2),
    }  # fmt: skip


async def _retained_check(broker: PrivateMosquitto, uids: list[str]) -> dict[str, int]:
    """Read back retained desired states from the broker: version and number of items."""
    found: dict[str, int] = {}
    ident = f"hz-{secrets.token_hex(3)}"
    async with aiomqtt.Client(broker.host, broker.port, username=CONTROLLER_USER,
                              password=broker.controller_password, identifier=ident) as c:
        for uid in uids:
            await c.subscribe(topics.desired(uid), qos=1)
        async with asyncio.timeout(10):
            async for msg in c.messages:
                raw = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                env = json.loads(b64u_decode(SignedMessage.model_validate_json(raw).payload))
                found[topics.parse_device_topic(msg.topic.value).uid] = len(env["body"]["schedule"])  # type: ignore[union-attr]
                if len(found) == len(uids):
                    break
    return found


async def bench_backend(kind: str, url: str, broker: PrivateMosquitto, stations: int, communes: int,
                        districts: int, horizon_days: int, profile: Path | None) -> dict[str, Any]:
    db = Database(url)
    db.migrate()
    t0 = time.perf_counter()
    seeded = seed(db, stations, communes, districts)
    seed_s = time.perf_counter() - t0
    with db.session() as s:
        ids = list(s.scalars(select(Device.id).order_by(Device.id)))
        uids = [ids and s.scalar(select(Device.uid).where(Device.id == ids[0])),
                s.scalar(select(Device.uid).where(Device.id == ids[-1]))]
    bus = MqttBus(broker.host, broker.port, client_id=f"hz-bench-{kind}", username=CONTROLLER_USER,
                  password=broker.controller_password, on_message=_ignore, subscriptions=())
    bus_task = asyncio.create_task(bus.run())
    horizon = timedelta(days=horizon_days)
    try:
        await asyncio.wait_for(bus.connected.wait(), 10)
        signer = TimingSigner(KeyPair.generate())
        prof = None
        if profile is not None:
            import cProfile

            prof = cProfile.Profile()
        phases = await _phases(db, bus, signer, ids, horizon, prof)
        if prof is not None:
            prof.dump_stats(f"{profile}.{kind}.prof")
        # The real thing: the durable queue drained by the lease holder.
        publisher = desired_state.DesiredStatePublisher(db, bus, signer, horizon,
                                                        sources=horizon_sources.standard(),
                                                        holder=f"bench-{secrets.token_hex(3)}")
        t1, cpu1 = time.perf_counter(), time.process_time()
        publisher.mark_dirty(ids)
        run = asyncio.create_task(publisher.run())
        try:
            while True:
                await asyncio.sleep(0.02)
                with db.session() as s:
                    if publisher.published >= len(ids) and dispatch.backlog(s) == 0:
                        break
                if time.perf_counter() - t1 > 600:
                    raise TimeoutError("publisher did not drain in 600 s")
            e2e, e2e_cpu = time.perf_counter() - t1, time.process_time() - cpu1
        finally:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
        retained = await _retained_check(broker, [u for u in uids if u])
    finally:
        bus.stop()
        bus_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await bus_task
        db.dispose()
    return {"database": kind, **seeded, "horizon_days": horizon_days, "seed_s": round(seed_s, 2),
            **phases, "publisher_e2e_s": round(e2e, 3),
            "publisher_e2e_cpu_s": round(e2e_cpu, 3), "load_avg_1m": os.getloadavg()[0],
            "retained_items": retained,
            "target_s": TARGET_S, "meets_target": phases["total_s"] <= TARGET_S and e2e <= TARGET_S}


async def _ignore(_topic: str, _payload: bytes) -> None:
    return None


async def bench_horizon(stations: int, communes: int, districts: int, db_kinds: list[str],
                        postgres_url: str, horizon_days: int, profile: Path | None) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="cc-bench-horizon-") as tmp:
        root = Path(tmp)
        broker = PrivateMosquitto(root / "broker", port=free_port(), controller_user=CONTROLLER_USER,
                                  controller_password=secrets.token_urlsafe(12))
        broker.start()
        try:
            for kind in db_kinds:
                drop: Callable[[], None] | None = None
                if kind == "sqlite":
                    url = f"sqlite:///{root / 'horizon.db'}"
                else:
                    url, drop = fresh_database(postgres_url, prefix="cc_bench_horizon")
                try:
                    results.append(await bench_backend(kind, url, broker, stations, communes, districts,
                                                       horizon_days, profile))
                finally:
                    if drop is not None:
                        drop()
        finally:
            broker.stop()
    return results


def print_result(r: dict[str, Any]) -> None:
    ok = "OK" if r["meets_target"] else "MISSED"
    print(f"bench horizon ({r['database']}): {r['stations']} stations, {r['communes']} communes, "
          f"{r['districts']} districts, {r['schedules']} daily schedules, {r['horizon_days']}-day horizon")
    print(f"  {r['items_per_station']} items per station, {r['avg_payload_kb']} KB signed payload each; "
          f"seeded in {r['seed_s']} s")
    print(f"  (a) build desired states: {r['build_s']} s   (b) sign: {r['sign_s']} s "
          f"({r['signatures']} signatures)   (c) publish retained QoS 1: {r['publish_s']} s")
    print(f"  total {r['total_s']} s (cold schedule cache, as after a start); through the durable queue "
          f"and DesiredStatePublisher (warm, as a 6-hourly roll): {r['publisher_e2e_s']} s "
          f"(target <= {r['target_s']} s: {ok})")
    print(f"  CPU of this process (all threads): {r['cpu_s']} s for the phases, {r['publisher_e2e_cpu_s']} s "
          f"through the publisher; load average {r['load_avg_1m']:.2f} on {os.cpu_count()} cores "
          f"(other work on the machine stretches wall time)")
    print(f"  read back from the broker (items in the retained state): {r['retained_items']}")


def run(args: Any) -> int:
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    communes = args.communes or max(1, args.stations // 20)
    districts = args.districts or max(1, communes // 20)
    results = asyncio.run(bench_horizon(args.stations, communes, districts, kinds, args.postgres_url,
                                        args.horizon_days, Path(args.profile) if args.profile else None))
    for r in results:
        print_result(r)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0 if all(r["meets_target"] for r in results) else 1
