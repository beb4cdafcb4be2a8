"""A bulletin cancelled before it started has no late station, in the API's `lateness` nor on
the play log page (_lateness.html); the same bulletin left on the air does (the control)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.db.models import Broadcast, Media
from tests.support.browser import ADMIN_PW, Panel, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _bulletin(panel: Panel, headers: dict[str, str], commune: int, sha: str) -> int:
    start = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = panel.client().http.post("/api/v1/broadcasts", headers=headers, json={
        "title": "Thông báo lịch cắt điện", "media_sha256": sha, "targets": {"communes": [commune]},
        "start_at": start})  # fmt: skip
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _ten_minutes_pass(panel: Panel, bc_id: int) -> None:
    """Its start is now 10 minutes past (its stations, never connected, did not play it)."""
    with panel.rt.db.session() as s:
        bc = s.get(Broadcast, bc_id)
        assert bc is not None
        bc.start_at = datetime.now(UTC) - timedelta(minutes=10)
        bc.created_at = bc.start_at - timedelta(hours=1)


@pytest.mark.parametrize("cancelled", [True, False])
def test_a_bulletin_cancelled_before_its_start_shows_no_late_station(panel: Panel, cancelled: bool) -> None:
    ids = panel.seed(stations_per_commune=2)
    sha = secrets.token_hex(32)
    with panel.rt.db.session() as s:
        s.add(Media(sha256=sha, original_name="Bản tin.mp3", content_type="audio/ogg", size=1000,
                    duration_s=30.0, codec="opus", source_sha256=sha))  # fmt: skip
    headers = panel.bearer("admin", ADMIN_PW)
    bc_id = _bulletin(panel, headers, ids["hop_hoa"], sha)
    http = panel.client().http
    if cancelled:
        r = http.post(f"/api/v1/broadcasts/{bc_id}/cancel", headers=headers)
        assert r.status_code == 200, r.text
    _ten_minutes_pass(panel, bc_id)

    body = http.get(f"/api/v1/broadcasts/{bc_id}", headers=headers).json()
    assert body["status"] == ("cancelled" if cancelled else "scheduled")
    states = body["station_states"]
    assert len(states) == 2
    late = [st for st in states if st["lateness"]]
    assert late == [] if cancelled else len(late) == 2, states

    c = panel.client()
    c.login("admin", ADMIN_PW)
    page = c.http.get(f"/playlog?broadcast_id={bc_id}").text
    assert ('id="late-stations"' in page) is not cancelled
    if cancelled:
        assert "Đã huỷ" in page and "Chưa phát." not in page
