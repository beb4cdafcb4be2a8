"""Issue 8, `bench horizon`: the set-based horizon gives exactly what the per-station loop gave,
and the benchmark itself runs end to end (small N; the 10,000-station figure is in docs/scaling.md)."""

from __future__ import annotations

import json
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from benchmarks import horizon as bench_horizon
from controller.db.models import Area, Device, Media
from controller.db.models_schedules import Schedule
from controller.db.session import Database
from controller.services import recurrence, schedule_horizon
from protocol.messages import MediaRef, Priority, ScheduleItem


def _reference(db: Database, now: datetime, horizon: timedelta) -> dict[int, list[ScheduleItem]]:
    """The original algorithm: every schedule matched against every station, expanded per call."""
    with db.session() as s:
        speakers = [d for d in s.scalars(select(Device)) if d.kind == "speaker" and d.retired_at is None]
        out: dict[int, list[ScheduleItem]] = {d.id: [] for d in speakers}
        groups_of = schedule_horizon.groups_by_commune(s, s.scalars(select(Area.id)))
        media = {m.sha256: m for m in s.scalars(select(Media))}
        for sc in s.scalars(select(Schedule).where(Schedule.status == "active")):
            members = [d for d in speakers if schedule_horizon.targets_match(sc.targets, d, groups_of)]
            if not members or any(x not in media for x in sc.media):
                continue
            refs = [MediaRef(sha256=x, size=media[x].size, duration_s=media[x].duration_s) for x in sc.media]
            since = now - timedelta(seconds=sc.duration_s) - schedule_horizon.KEEP_PAST
            for occ in recurrence.occurrences(sc, since, now + horizon, limit=recurrence.MAX_CHECKED):
                item = ScheduleItem(item_id=recurrence.item_id(sc.id, occ.start), title=sc.title,
                                    start_at=occ.start, priority=Priority(sc.priority), media=refs)
                for d in members:
                    out[d.id].append(item)
        for items in out.values():
            items.sort(key=lambda i: i.start_at)
        return out


def test_set_based_horizon_equals_the_per_station_loop(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    db.migrate()
    bench_horizon.seed(db, 120, 12, 3)
    with db.session() as s:
        devices = list(s.scalars(select(Device).order_by(Device.id)))
        devices[0].tags = ["chợ"]
        devices[5].kind = "led"
        devices[7].retired_at = datetime.now(UTC)
        sha = s.scalars(select(Media.sha256)).first()
        extra = dict(media=[sha], duration_s=60.0, timezone="Asia/Ho_Chi_Minh", status="active", exdates=[],
                     priority="normal")  # fmt: skip
        s.add_all([
            Schedule(title="Toàn tỉnh", rrule="FREQ=WEEKLY;BYDAY=MO,TH", dtstart="2025-03-03T06:00:00",
                     targets={"all": True}, **extra),
            Schedule(title="Chợ phiên", rrule="FREQ=DAILY;INTERVAL=3", dtstart="2025-05-01T07:00:00",
                     targets={"tags": ["chợ"], "devices": [devices[3].id]}, **extra),
            Schedule(title="Hết hạn", rrule="FREQ=DAILY", dtstart="2025-01-01T05:30:00",
                     until="2025-02-01T00:00:00", targets={"all": True}, **extra),
            Schedule(title="Cùng giờ", rrule="FREQ=DAILY", dtstart="2025-01-01T05:30:00",
                     targets={"communes": [devices[1].commune_id]},
                     **{**extra, "exdates": ["2026-11-28T05:30:00"]}),
        ])  # fmt: skip
    now, horizon = datetime.now(UTC), timedelta(days=8)
    want = _reference(db, now, horizon)
    schedule_horizon.clear_cache()
    for _ in range(2):  # cold, then from the cache
        with db.session() as s:
            devs = list(s.scalars(select(Device).order_by(Device.id)))
            got = {}
            for i in range(0, len(devs), 50):  # in batches, as the publisher builds
                got.update(schedule_horizon.horizon_items(s, devs[i : i + 50], now=now, horizon=horizon))
        assert got == want
    assert len(want[devices[0].id]) > len(want[devices[2].id])  # the tag matched
    db.dispose()


def test_bench_horizon_runs(tmp_path: Path, capsys: object) -> None:
    out = tmp_path / "horizon.json"
    args = Namespace(stations=200, communes=None, districts=None, horizon_days=8, db="sqlite",
                     postgres_url="", profile=None, json=str(out))
    assert bench_horizon.run(args) == 0
    (result,) = json.loads(out.read_text())
    assert result["stations"] == 200 and result["schedules"] == 2 * 10 + 2 * 1
    assert 32 <= result["items_per_station"] <= 36  # 4 daily schedules over 8 days (+ one just begun)
    assert set(result["retained_items"]) == {"hz-000000", "hz-000199"}
    assert all(n == result["items_per_station"] for n in result["retained_items"].values())
    assert result["signatures"] == 200
