"""Issue 3: a schedule occurrence plays with proof of play, the play log exports as CSV and
XLSX (Vietnamese, Asia/Ho_Chi_Minh, dd/mm/yyyy) with monthly minutes per commune, and
deleting a schedule takes its future occurrences off the station."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from testkit.api import Api
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


async def test_schedule_plays_and_reports_export(system: System, tmp_path: Path) -> None:
    (station,) = await system.add_stations(1)
    commune = next(c for c in system.communes if c["id"] == station.config.groups.get("commune"))
    sha = (await Api.of(system).upload(tone(tmp_path / "b.wav", seconds=1.0)))["sha256"]
    start = (datetime.now(TZ) + timedelta(seconds=6)).replace(microsecond=0)
    once = await system.api_json("POST", "/api/v1/schedules", json={
        "title": "Thông báo tiêm chủng đợt 2", "media": [sha], "rrule": "FREQ=DAILY;COUNT=1",
        "dtstart": start.replace(tzinfo=None).isoformat(), "targets": {"devices": [station.device_id]}})
    later = await system.api_json("POST", "/api/v1/schedules", json={
        "title": "Bản tin chiều", "media": [sha], "rrule": "FREQ=DAILY",
        "dtstart": (start + timedelta(hours=2)).replace(tzinfo=None).isoformat(),
        "targets": {"communes": [commune["id"]]}})
    item = f"s{once['id']}@{start.astimezone(ZoneInfo('UTC')):%Y%m%dT%H%M%SZ}"
    agent = station.running.agent
    await eventually(lambda: _pending(agent),
                     lambda ids: item in ids and any(i.startswith(f"s{later['id']}@") for i in ids),
                     timeout=15, what="both in the horizon")

    rows = await eventually(
        lambda: system.api_json("GET", "/api/v1/play-log", params={"device_id": station.device_id}),
        lambda rs: any(r["item_id"] == item and r["status"] == "played" for r in rs),
        timeout=30, what="proof of play of the occurrence",
    )
    assert [r["item_id"] for r in rows] == [item]  # once, and nothing else yet

    # Deleting the daily schedule takes all its future occurrences off the station.
    await system.api_json("DELETE", f"/api/v1/schedules/{later['id']}")
    await eventually(lambda: _pending(agent),
                     lambda ids: not any(i.startswith(f"s{later['id']}@") for i in ids),
                     timeout=15, what="deleted schedule gone from the station")

    r = await system.api("GET", "/api/v1/reports/play-log.csv", params={"commune": commune["id"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert table[0][:3] == ["Thời gian bắt đầu", "Thời gian kết thúc", "Xã/phường"]
    (line,) = table[1:]
    assert line[0].startswith(start.strftime("%d/%m/%Y %H:%M"))
    assert line[2] == commune["name"] and line[3] == (commune["code"] or "")  # the official code beside it
    assert line[6] == "Thông báo tiêm chủng đợt 2" and line[9] == "Đã phát"
    other = next(c for c in system.communes if c["id"] != commune["id"])
    r = await system.api("GET", "/api/v1/reports/play-log.csv", params={"commune": other["id"]})
    assert len(list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))) == 1  # header only
    r = await system.api("GET", "/api/v1/reports/play-log.csv", params={
        "from": (start + timedelta(minutes=5)).isoformat()})
    assert len(list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))) == 1

    r = await system.api("GET", "/api/v1/reports/play-log.xlsx", headers={"Accept-Language": "en"})
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.content))
    log_sheet, monthly = wb.worksheets
    assert [c.value for c in log_sheet[1]][:3] == ["Started", "Finished", "Commune"]
    assert log_sheet.cell(2, 10).value == "played"
    assert [c.value for c in monthly[2]][:3] == [commune["name"], commune["code"], start.strftime("%m/%Y")]

    summary = await system.api_json("GET", "/api/v1/reports/monthly")
    assert summary == [{"commune_id": commune["id"], "commune": commune["name"],
                        "commune_code": commune["code"], "month": start.strftime("%m/%Y"),
                        "minutes": summary[0]["minutes"], "played": 1, "missed": 0, "failed": 0,
                        "interrupted": 0}]
    assert 0.9 / 60 < summary[0]["minutes"] < 1.5 / 60


async def _pending(agent) -> set[str]:  # type: ignore[no-untyped-def]
    return {i.item_id for i in agent.store.pending_items()}
