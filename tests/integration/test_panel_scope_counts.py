"""Station counts on the panel count only the stations the caller may see.

A commune operator sees a province-wide schedule (it reaches their commune), but its "Số trạm"
must be their commune's stations, not the province's; the same for the play log's "n trạm
nhận lệnh" and its per-result counts of a broadcast sent to the whole province. A province
operator sees them all."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller.db.models import Broadcast, Delivery, Device, Media, PlayLog, User
from controller.db.models_schedules import Schedule
from controller.db.statuses import BroadcastStatus, PlayStatus, ScheduleStatus
from controller.services.broadcasts import item_id_for
from controller.web import accounts
from tests.support.browser import PW, Panel, PanelClient, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _plant(panel: Panel, ids: dict[str, Any]) -> dict[str, int]:
    """Three province-wide schedules (all; the three communes by id; a tag on one station of
    Hợp Hòa and one of Xuân Hòa), a province operator, and a bulletin sent to every station that
    one Hợp Hòa and one Xuân Hòa station reported played."""
    sha = secrets.token_hex(32)
    hop_hoa, xuan_hoa = ids["devices"][ids["hop_hoa"]], ids["devices"][ids["xuan_hoa"]]
    out: dict[str, int] = {}
    with panel.rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        accounts.create_user(s, admin, "canbo.tinh", PW, "province", ids["province"])
        s.add(Media(sha256=sha, original_name="Bản tin.mp3", content_type="audio/ogg", size=1000,
                    duration_s=60.0, codec="opus", source_sha256=sha))  # fmt: skip
        for dev in (hop_hoa[0], xuan_hoa[0]):
            s.get(Device, dev).tags = ["chợ"]  # type: ignore[union-attr]
        communes = [ids["hop_hoa"], ids["kim_long"], ids["xuan_hoa"]]
        for key, targets, status in (("all", {"all": True}, ScheduleStatus.ACTIVE),
                                     ("communes", {"communes": communes}, ScheduleStatus.ACTIVE),
                                     ("tags", {"tags": ["chợ"]}, ScheduleStatus.ACTIVE),
                                     ("draft", {"all": True}, ScheduleStatus.DRAFT)):  # fmt: skip
            sc = Schedule(title=f"Lịch {key}", media=[sha], duration_s=60.0, rrule="FREQ=DAILY;BYHOUR=6",
                          dtstart="2026-01-01T06:00:00", timezone="Asia/Ho_Chi_Minh", targets=targets,
                          status=status)  # fmt: skip
            s.add(sc)
            s.flush()
            out[key] = sc.id
        start = datetime.now(UTC) - timedelta(minutes=10)
        bc = Broadcast(title="Thông báo toàn tỉnh", media=[sha], start_at=start, duration_s=60.0,
                       targets={"all": True}, status=BroadcastStatus.SCHEDULED,
                       created_by=admin.id)  # fmt: skip
        s.add(bc)
        s.flush()
        every = [d for devs in ids["devices"].values() for d in devs]
        s.add_all(Delivery(broadcast_id=bc.id, device_id=d, item_id=item_id_for(bc.id)) for d in every)
        s.add_all(PlayLog(device_id=d, item_id=item_id_for(bc.id), broadcast_id=bc.id,
                          status=PlayStatus.PLAYED, started_at=start,
                          finished_at=start + timedelta(minutes=1), start_error_ms=5.0)
                  for d in (hop_hoa[0], xuan_hoa[0]))  # fmt: skip
        out["broadcast"] = bc.id
    return out


def _login(panel: Panel, username: str) -> PanelClient:
    c = panel.client()
    c.login(username, PW)
    return c


def _counts(html: str, schedule_ids: dict[str, int]) -> dict[str, int]:
    """The "Số trạm" cell of each schedule's row in "Tất cả lịch phát"."""
    out = {}
    for key, sc_id in schedule_ids.items():
        m = re.search(rf'<tr id="schedule-{sc_id}">.*?<td class="num hide-sm">(\d+)</td>', html, re.S)
        assert m, f"no row for schedule {key}"
        out[key] = int(m.group(1))
    return out


def _draft_line(html: str, sc_id: int) -> str:
    m = re.search(rf'data-schedule="{sc_id}">\s*<p>(.*?)</p>', html, re.S)
    assert m, "no draft line"
    return m.group(1)


@pytest.mark.parametrize(("username", "expected"), [
    ("canbo.hophoa", {"all": 2, "communes": 2, "tags": 1, "draft": 2}),  # their commune's 2 stations
    ("canbo.huyen", {"all": 4, "communes": 4, "tags": 1, "draft": 4}),  # Hợp Hòa + Kim Long
    ("canbo.tinh", {"all": 6, "communes": 6, "tags": 2, "draft": 6}),  # the whole province
])  # fmt: skip
def test_schedule_station_counts_are_the_callers_stations(panel: Panel, username: str,
                                                          expected: dict[str, int]) -> None:
    ids = panel.seed(stations_per_commune=2)
    planted = _plant(panel, ids)
    schedules = {k: planted[k] for k in ("all", "communes", "tags", "draft")}
    page = _login(panel, username).http.get("/schedules")
    assert page.status_code == 200
    assert _counts(page.text, schedules) == expected
    assert f"{expected['draft']} trạm nhận lệnh" in _draft_line(page.text, planted["draft"])


@pytest.mark.parametrize(("username", "stations", "played"), [
    ("canbo.hophoa", 2, 1), ("canbo.tinh", 6, 2),
])  # fmt: skip
def test_play_log_counts_only_the_callers_stations(panel: Panel, username: str, stations: int,
                                                   played: int) -> None:
    ids = panel.seed(stations_per_commune=2)
    planted = _plant(panel, ids)
    page = _login(panel, username).http.get(f"/playlog?broadcast_id={planted['broadcast']}")
    assert page.status_code == 200
    summary = re.search(r'<section class="card" id="broadcast-summary">(.*?)</section>', page.text, re.S)
    assert summary, page.text[:2000]
    assert f"{stations} trạm nhận lệnh" in summary.group(1)
    assert re.search(rf'class="pill st-played">[^<:]*: {played}</span>', summary.group(1)), summary.group(1)
