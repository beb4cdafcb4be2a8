"""`communecast bench panel --stations 10000`: how fast the panel's busiest pages answer.

Seeds a fresh database (SQLite by default; PostgreSQL with --database-url pointing at a
server, on which a throw-away database is created and dropped) with an area tree, N
stations with GPS and state, and proof-of-play rows; then requests the dashboard, the
station list (first/deep page, search, state and commune filters), a station's detail
page, the play log and the monthly report through the real app (routing, session check, SQL, templates),
as an unscoped admin and as a district operator. Prints server-side times in ms.

Its arguments are declared with the other benchmarks' in communecast/commands/bench.py.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_MS = 1000.0


def _fresh_pg(url: str) -> tuple[str, Any]:
    from testkit.pgtemp import fresh_database

    return fresh_database(url, "cc_bench_panel")


def seed(db: Any, stations: int, communes: int, plays: int, *, rng: random.Random) -> dict[str, Any]:
    """Bulk-insert the fleet with Core inserts (the ORM would dominate the timing)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, select

    from controller.db.models import Area, AreaGroupMember, Broadcast, Device, PlayLog

    now = datetime.now(UTC)
    with db.session() as s:
        province = Area(level="province", name="Tỉnh Phú Thọ", code="BENCH")
        s.add(province)
        s.flush()
        districts = []  # groups of communes (the former districts, docs/areas.md)
        for i in range(max(1, communes // 25)):
            d = Area(level="group", name=f"Khu vực {i + 1:02d}", parent_id=province.id)
            s.add(d)
            districts.append(d)
        s.flush()
        s.execute(insert(Area), [
            {"level": "commune", "kind": "xa", "name": f"Xã số {i + 1:03d}", "parent_id": province.id,
             "former_names": []}
            for i in range(communes)
        ])  # fmt: skip
        commune_ids = list(s.scalars(select(Area.id).where(Area.level == "commune").order_by(Area.id)))
        s.execute(insert(AreaGroupMember), [{"group_id": districts[i % len(districts)].id, "commune_id": c}
                                            for i, c in enumerate(commune_ids)])
        rows = []
        for i in range(stations):
            cid = commune_ids[i % len(commune_ids)]
            online = rng.random() < 0.85
            playing = online and rng.random() < 0.05
            rows.append({
                "uid": f"spk-{i:08x}", "name": f"Cụm loa {i + 1:05d}", "kind": "speaker", "commune_id": cid,
                "tags": [], "lat": 21.0 + (cid % 20) * 0.03 + rng.random() * 0.02,
                "lon": 105.3 + (cid // 20) * 0.03 + rng.random() * 0.02, "online": online,
                "last_seen": now - timedelta(seconds=rng.randint(0, 600)),
                "reported": {"online": online, "agent_version": "0.1.0",
                             "playing": "b1" if playing else None},
                "desired_version": 3, "created_at": now,
            })  # fmt: skip
        for chunk in range(0, len(rows), 5000):
            s.execute(insert(Device), rows[chunk:chunk + 5000])
        device_ids = list(s.scalars(select(Device.id).order_by(Device.id)))
        for b in range(plays):
            bc = Broadcast(title=f"Bản tin thời sự số {b + 1}", media=["0" * 64], priority="normal",
                           start_at=now - timedelta(hours=plays - b), duration_s=120.0, targets={"all": True})
            s.add(bc)
            s.flush()
            start = bc.start_at
            log_rows = [{
                "device_id": d, "broadcast_id": bc.id, "item_id": f"b{bc.id}",
                "status": "played" if rng.random() < 0.95 else "missed", "started_at": start,
                "finished_at": start + timedelta(seconds=120), "start_error_ms": rng.uniform(-5, 5),
                "updated_at": now,
            } for d in device_ids]  # fmt: skip
            for chunk in range(0, len(log_rows), 5000):
                s.execute(insert(PlayLog), log_rows[chunk:chunk + 5000])
        return {"district": districts[0].id, "device": device_ids[len(device_ids) // 2]}


def run(args: argparse.Namespace) -> int:
    import logging
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from fastapi.testclient import TestClient

    from communecast.mosquitto import free_port
    from controller.app import create_app
    from controller.core.config import Settings
    from controller.db.models import User
    from controller.web import accounts

    logging.getLogger("controller").setLevel(logging.ERROR)  # the broker is not needed here
    rng = random.Random(7)  # noqa: S311  (seeded test data, not security)
    drop = None
    with tempfile.TemporaryDirectory(prefix="cc-bench-panel-") as tmp:
        if args.database_url and not args.database_url.startswith("sqlite"):
            url, drop = _fresh_pg(args.database_url)
            backend = "postgresql"
        else:
            url = args.database_url or f"sqlite:///{Path(tmp) / 'panel.db'}"
            backend = "sqlite"
        try:
            password = secrets.token_urlsafe(12)
            settings = Settings(data_dir=Path(tmp) / "ctl", database_url=url, admin_password=password,
                                mqtt_port=free_port(), mqtt_client_id=f"bench-panel-{secrets.token_hex(3)}")
            app = create_app(settings)
            with TestClient(app) as admin:
                rt = app.state.runtime
                t0 = time.perf_counter()
                ids = seed(rt.db, args.stations, args.communes, args.plays, rng=rng)
                seed_s = time.perf_counter() - t0
                with rt.db.session() as s:
                    root = s.query(User).filter_by(username="admin").one()
                    accounts.create_user(s, root, "bench.district", password, "group", ids["district"])
                _login(admin, "admin", password)
                district = TestClient(app)
                _login(district, "bench.district", password)
                # Monthly report over every seeded play (SQL GROUP BY per commune and local month).
                today = datetime.now(ZoneInfo(settings.timezone)).date()
                since = (today - timedelta(days=62)).isoformat()
                pages = [
                    ("admin", admin, "/"),
                    ("admin", admin, "/stations"),
                    ("admin", admin, f"/stations?page={max(1, args.stations // 50 // 2)}"),
                    ("admin", admin, "/stations?q=c%E1%BB%A5m+loa+0999"),
                    ("admin", admin, "/stations?state=playing"),
                    ("admin", admin, "/stations?state=offline&page=3"),
                    ("admin", admin, f"/stations/{ids['device']}"),
                    ("admin", admin, "/playlog"),
                    ("admin", admin, f"/reports?start={since}&end={today}"),
                    ("district", district, "/"),
                    ("district", district, "/stations?state=online"),
                    ("district", district, f"/reports?start={since}&end={today}"),
                ]
                results = []
                for who, client, path in pages:
                    r = _time(client, path, args.repeat)
                    r["user"] = who
                    results.append(r)
        finally:
            if drop:
                drop()
    out = {"backend": backend, "stations": args.stations, "communes": args.communes,
           "play_log_rows": args.stations * args.plays, "seed_s": round(seed_s, 1), "pages": results}
    print(f"\npanel with {args.stations} stations in {args.communes} communes on {backend} "
          f"({out['play_log_rows']} play-log rows; seeded in {seed_s:.1f} s), {args.repeat} requests each:")
    print(f"  {'user':9} {'page':48} {'median ms':>10} {'max ms':>8} {'first ms':>9} {'KB':>6}")
    worst = 0.0
    for r in results:
        worst = max(worst, r["median_ms"])
        print(f"  {r['user']:9} {r['path'][:48]:48} {r['median_ms']:10.1f} {r['max_ms']:8.1f} "
              f"{r['first_ms']:9.1f} {r['bytes'] / 1024:6.0f}")
    verdict = "OK" if worst < TARGET_MS else "SLOWER THAN"
    print(f"  slowest median {worst:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0 if worst < TARGET_MS else 1


def _login(client: Any, username: str, password: str) -> None:
    import re

    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": username, "password": password, "csrf": token},
                    follow_redirects=False)
    if r.status_code != 303:
        raise RuntimeError(f"login as {username} failed: {r.status_code}")


def _time(client: Any, path: str, repeat: int) -> dict[str, Any]:
    times = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"GET {path} -> {r.status_code}")
        size = len(r.content)
    return {"path": path, "median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
            "first_ms": round(times[0], 1), "bytes": size}
