"""Issue 20, item 6: the media library. Listed by area; renamed, tagged, given an expiry; an
expired recording refused for a new broadcast; deleting one that a future schedule uses is
refused with where it is used (API 409 `where`, and the panel says it); an unused one is
deleted, row and file; another area's operator, a viewer and an anonymous client can do none
of it. Both databases."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.db.models import Media, User
from controller.web import accounts
from tests.support.browser import ADMIN_PW, PW, Panel, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _token(panel: Panel, username: str, password: str = PW) -> dict[str, str]:
    return panel.bearer(username, password)


def _recording(panel: Panel, uploader: str, name: str) -> str:
    sha = secrets.token_hex(32)
    with panel.rt.db.session() as s:
        user = s.scalars(select(User).where(User.username == uploader)).one()
        s.add(Media(sha256=sha, original_name=name, content_type="audio/ogg", size=4, duration_s=2.0,
                    codec="opus", source_sha256=sha, created_by=user.id, origin="upload"))  # fmt: skip
    path = panel.rt.media.path_for(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"OggS")
    return sha


def _daily(title: str, sha: str, commune: int) -> dict[str, object]:
    return {"title": title, "media": [sha], "rrule": "FREQ=DAILY;BYHOUR=6;BYMINUTE=0",
            "dtstart": "2030-01-01T00:00:00", "targets": {"communes": [commune]}}


def test_library_by_area_with_rename_expiry_and_guarded_delete(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    with panel.rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        accounts.create_user(s, admin, "canbo.xuanhoa", PW, "commune", ids["xuan_hoa"])
    used = _recording(panel, "canbo.hophoa", "ban-tin-sang.mp3")
    spare = _recording(panel, "canbo.hophoa", "thu-am-cu.mp3")
    theirs = _recording(panel, "canbo.xuanhoa", "xuan-hoa.mp3")
    http = panel.client().http
    mine, group = _token(panel, "canbo.hophoa"), _token(panel, "canbo.huyen")
    other = _token(panel, "canbo.xuanhoa")
    viewer, admin_h = _token(panel, "nguoixem"), _token(panel, "admin", ADMIN_PW)

    # Listed by area: the commune's and its group operator's lists hold Hợp Hòa's, not Xuân Hòa's.
    listed = {m["sha256"] for m in http.get("/api/v1/media", headers=mine).json()}
    assert {used, spare} <= listed and theirs not in listed
    assert theirs not in {m["sha256"] for m in http.get("/api/v1/media", headers=group).json()}
    assert {used, spare, theirs} <= {m["sha256"] for m in http.get("/api/v1/media", headers=admin_h).json()}

    # Rename and tag; search finds it by the new name without diacritics.
    tags = ["sáng", "định kỳ"]
    new = {"title": "Bản tin sáng thứ Hai", "tags": tags}
    r = http.patch(f"/api/v1/media/{used}", json=new, headers=mine)
    assert r.status_code == 200 and r.json()["title"] == "Bản tin sáng thứ Hai" and r.json()["tags"] == tags
    found = http.get("/api/v1/media", params={"q": "ban tin sang thu hai"}, headers=mine).json()
    assert [m["sha256"] for m in found] == [used]

    # Another area, a viewer, anonymous: not found / forbidden / 401, nothing changed.
    assert http.patch(f"/api/v1/media/{used}", json={"title": "x"}, headers=other).status_code == 404
    assert http.delete(f"/api/v1/media/{spare}", headers=other).status_code == 404
    assert http.patch(f"/api/v1/media/{used}", json={"title": "x"}, headers=viewer).status_code == 403
    assert http.delete(f"/api/v1/media/{spare}", headers={}).status_code == 401
    assert panel.rt.media.path_for(spare).exists()

    # A future schedule uses it: delete refused with where; the unused one deletes, file and all.
    sched = http.post("/api/v1/schedules", json=_daily("Bản tin sáng", used, ids["hop_hoa"]), headers=mine)
    assert sched.status_code == 201, sched.text
    refused = http.delete(f"/api/v1/media/{used}", headers=mine)
    assert refused.status_code == 409, refused.text
    where = [{"kind": "schedule", "id": sched.json()["id"], "title": "Bản tin sáng"}]
    assert refused.json()["where"] == where
    assert "còn được dùng trong Bản tin sáng" in refused.json()["detail"]
    assert http.delete(f"/api/v1/media/{spare}", headers=mine).status_code == 204
    assert not panel.rt.media.path_for(spare).exists()
    assert http.get(f"/api/v1/media/{spare}", headers=admin_h).status_code == 404

    # Expired: refused for a new broadcast, by name.
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert http.patch(f"/api/v1/media/{used}", json={"expires_at": past}, headers=mine).status_code == 200
    late = http.post("/api/v1/broadcasts", json={"title": "Thử", "media_sha256": used,
                                                 "targets": {"communes": [ids["hop_hoa"]]}}, headers=mine)
    assert late.status_code == 422 and "Bản tin sáng thứ Hai" in late.json()["detail"]
    assert "hết hạn" in late.json()["detail"]
    cleared = http.patch(f"/api/v1/media/{used}", json={"expires_at": None}, headers=mine)
    assert cleared.json()["expires_at"] is None


def test_the_panel_library_edits_and_explains_a_refused_delete(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    used = _recording(panel, "canbo.hophoa", "ban-tin.mp3")
    op = panel.client()
    op.login("canbo.hophoa", PW)
    token = _token(panel, "canbo.hophoa")
    op.http.post("/api/v1/schedules", json=_daily("Lịch sáng", used, ids["hop_hoa"]), headers=token)
    page = op.http.get("/library").text
    assert 'id="library-table"' in page and "ban-tin.mp3" in page and "Lịch sáng" in page
    edit = {"title": "Tin sáng", "tags": "sáng, tin", "expires": "31/12/2030"}
    saved = op.post_form(f"/library/{used}/edit", edit, csrf_from="/library")
    assert saved.status_code == 303
    page = op.http.get("/library").text
    assert "Tin sáng" in page and "Dùng đến 31/12/2030" in page
    bad = op.post_form(f"/library/{used}/edit", {**edit, "expires": "2030-12-31"}, csrf_from="/library")
    assert bad.status_code == 422 and "ngày/tháng/năm" in bad.text
    refused = op.post_form(f"/library/{used}/delete", csrf_from="/library")
    assert refused.status_code == 409 and "còn được dùng trong Lịch sáng" in refused.text
    assert panel.rt.media.path_for(used).exists()
    viewer = panel.client()
    viewer.login("nguoixem", PW)
    assert viewer.post_form(f"/library/{used}/delete", csrf_from="/library").status_code == 403
