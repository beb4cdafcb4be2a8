"""reports.monthly is one GROUP BY in SQL; it must give exactly what adding the play log up
row by row in Python gives, on SQLite and PostgreSQL, including plays a second either side
of local midnight at the end of a month (and of a year): a play's month is its local date
in Asia/Ho_Chi_Minh (UTC+7), so 31/01 17:00:00 UTC is already February."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controller.db.models import Area, Device, PlayLog
from controller.db.session import Database
from controller.services import reports
from controller.services.reports import TZ, Filters, _when


def reference_monthly(s: Any, f: Filters) -> list[dict[str, Any]]:
    """The straightforward computation (the implementation before the GROUP BY)."""
    acc: dict[tuple[int, str], dict[str, Any]] = {}
    for r, commune_id, name, code in s.query(PlayLog, Device.commune_id, Area.name, Area.code).join(
        Device, Device.id == PlayLog.device_id
    ).join(Area, Area.id == Device.commune_id):
        if f.commune_id is not None and commune_id != f.commune_id:
            continue
        when = _when(r)
        if when is None or (f.start and when < f.start) or (f.end and when >= f.end):
            continue
        month = when.astimezone(TZ).strftime("%m/%Y")
        a = acc.setdefault((commune_id, month), {"commune_id": commune_id, "commune": name,
                                                 "commune_code": code, "month": month,
                                                 "minutes": 0.0, "played": 0, "missed": 0, "failed": 0,
                                                 "interrupted": 0})  # fmt: skip
        if r.status in ("played", "interrupted") and r.started_at and r.finished_at:
            a["minutes"] += (r.finished_at - r.started_at).total_seconds() / 60
        if r.status in ("played", "missed", "failed", "interrupted"):
            a[r.status] += 1
    out = sorted(acc.values(), key=lambda a: (a["commune"], a["month"][3:], a["month"][:2]))
    for a in out:
        a["minutes"] = round(a["minutes"], 2)
    return out


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)  # type: ignore[misc]


# (started_at, duration s, status, item_id, updated_at) — edges in UTC around local midnight.
PLAYS: list[tuple[datetime | None, int | None, str, str, datetime]] = [
    (utc(2025, 12, 31, 16, 59, 59), 61, "played", "b1", utc(2026, 1, 1)),  # 31/12 23:59:59 local
    (utc(2025, 12, 31, 17, 0, 0), 125, "played", "b2", utc(2026, 1, 1)),  # 01/01 00:00 local
    (utc(2026, 1, 15, 3), 300, "interrupted", "b3", utc(2026, 1, 15, 4)),
    (utc(2026, 1, 31, 16, 59, 59), 47, "played", "b4", utc(2026, 2, 1)),  # still January
    (utc(2026, 1, 31, 17, 0, 0), 59, "played", "b5", utc(2026, 2, 1)),  # February
    (utc(2026, 1, 31, 17, 30), None, "playing", "b6", utc(2026, 1, 31, 17, 30)),  # no minutes yet
    (utc(2026, 1, 20), 90, "failed", "b7", utc(2026, 1, 20)),  # failed: counted, no minutes
    # not started: the schedule item's instant decides, a second either side of midnight
    (None, None, "missed", "s4@20260228T165959Z", utc(2026, 3, 5)),  # 28/02 23:59:59 local
    (None, None, "missed", "s4@20260228T170000Z", utc(2026, 2, 20)),  # 01/03 local
    # not started and no schedule item: the last update decides
    (None, None, "failed", "b8", utc(2026, 2, 28, 17, 0, 1)),  # 01/03 00:00:01 local
    (None, None, "missed", "x4@20260228T170000Z", utc(2026, 2, 28, 16, 0)),  # not a schedule id: Feb
    (utc(2026, 3, 31, 16, 59, 59, 500000), 1, "played", "b9", utc(2026, 4, 1)),  # half a second to April
]


def seed(db: Database) -> dict[str, int]:
    with db.session() as s:
        province = Area(level="province", name="Tỉnh Phú Thọ")
        a = Area(level="commune", name="Xã Hợp Hòa", parent=province)
        b = Area(level="commune", name="Xã Kim Long", parent=province)
        s.add_all([province, a, b])
        s.flush()
        devices = []
        for i, commune in enumerate((a, b, a)):
            d = Device(uid=f"spk-m{i}", name=f"Cụm loa {i}", kind="speaker", commune_id=commune.id,
                       reported={})
            s.add(d)
            devices.append(d)
        s.flush()
        for i, (start, dur, status, item, updated) in enumerate(PLAYS):
            for n, d in enumerate(devices):
                if (i + n) % 4 == 3:
                    continue  # not every station has every play
                s.add(PlayLog(device_id=d.id, item_id=item, status=status, started_at=start,
                              finished_at=start + timedelta(seconds=dur + n) if start and dur else None,
                              updated_at=updated))  # fmt: skip
        return {"a": a.id, "b": b.id}


def test_monthly_group_by_matches_python_at_month_ends(db: Database) -> None:
    ids = seed(db)
    day = timedelta(days=1)
    filters = [
        Filters(),  # the API without a range: months found from the data
        Filters(commune_id=ids["b"]),
        Filters(local(2026, 1, 1), local(2026, 2, 1)),  # exactly local January
        Filters(local(2026, 1, 31), local(2026, 3, 1) + day, ids["a"]),  # the panel: local days, inclusive
        Filters(local(2026, 2, 1), local(2026, 3, 1)),  # February only: both midnight edges excluded
        Filters(local(2027, 1, 1), local(2027, 2, 1)),  # nothing
        Filters(local(2000, 1, 1), local(2100, 1, 1)),  # a century: narrowed to the data's months first
        Filters(start=local(2026, 2, 1)),  # open end
    ]
    with db.session() as s:
        for f in filters:
            assert reports.monthly(s, f) == reference_monthly(s, f), f
        everything = reports.monthly(s, Filters())
    months = {(r["commune"], r["month"]) for r in everything}
    assert ("Xã Hợp Hòa", "12/2025") in months and ("Xã Hợp Hòa", "04/2026") not in months
    by = {(r["commune_id"], r["month"]): r for r in everything}
    feb_a = by[(ids["a"], "02/2026")]
    # 01/02 00:00 local played on both Hợp Hòa stations, the 17:30 one is still playing.
    assert feb_a["played"] == 2 and feb_a["minutes"] == round((59 + 61) / 60, 2)
    assert feb_a["missed"] == 3  # 28/02 23:59:59 local by its schedule instant, and the odd item id
    march_a = by[(ids["a"], "03/2026")]
    # 01/03 00:00 by the schedule instant (twice), by the last update (once); 31/03 23:59:59.5 local.
    assert (march_a["missed"], march_a["failed"], march_a["played"]) == (2, 1, 1)
