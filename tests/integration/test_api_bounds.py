"""Inputs that answered 500 under fuzzing (issue 16, items 12 and 13) now get a 4xx that says why:
integers beyond 64 bits in the path, the query and the body (one of them without logging in),
a duplicate area code, approving a broadcast that is no longer a draft, and a negative `limit`
(which used to return every row)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.db.models import Media
from testkit.pgtemp import fresh_database
from tests.support.browser import ADMIN_PW, Panel, running_panel

HUGE = 2**70  # beyond SQLite's and PostgreSQL's 64-bit integers
WIDE = 2**40  # fits SQLite, not PostgreSQL's 32-bit INTEGER primary keys


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def admin_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Any, dict[str, str]]]:  # fmt: skip
    """One controller per database kind for every out-of-range case, the admin logged in once:
    each case is refused (422) before a row is read or written, so none can see another's."""
    tmp_path = tmp_path_factory.mktemp(f"bounds-{request.param}")
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'controller.db'}"
    else:
        url, drop = fresh_database(request.getfixturevalue("postgres_server"), prefix="cc_test")
    try:
        with running_panel(tmp_path, url) as p:
            yield _admin(p)
    finally:
        if drop is not None:
            drop()


def _admin(panel: Panel) -> tuple[Any, dict[str, str]]:
    http = panel.client().http
    token = http.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PW}).json()
    return http, {"Authorization": f"Bearer {token['access_token']}", "Accept-Language": "vi"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/devices/{HUGE}/telemetry?metric=mains_v", None),
        ("GET", f"/api/v1/broadcasts/{HUGE}", None),
        ("POST", f"/api/v1/schedules/{HUGE}/approve", None),
        ("GET", f"/api/v1/communes/{HUGE}/policy", None),
        ("GET", f"/api/v1/devices?commune_id={HUGE}", None),
        ("GET", f"/api/v1/play-log?device_id={HUGE}", None),
        ("GET", f"/api/v1/reports/monthly?commune={HUGE}&from=2030-01-01", None),
        ("POST", "/api/v1/devices", {"name": "Loa", "kind": "speaker", "commune_id": HUGE}),
        ("POST", "/api/v1/areas", {"level": "commune", "name": "Xã", "parent_id": HUGE}),
        ("POST", "/api/v1/led-messages", {"text": "Họp", "dry_run": True, "targets": {"communes": [HUGE]}}),
        ("GET", "/api/v1/media?limit=-1", None),
        ("GET", "/api/v1/broadcasts?limit=0", None),
        ("GET", "/api/v1/play-log?limit=100000000", None),
        ("GET", f"/api/v1/devices/{-HUGE}/events", None),
        ("POST", f"/api/v1/alarms/{WIDE}/ack", {}),
        ("POST", f"/api/v1/updates/{WIDE}/rollout", {}),
        ("PUT", f"/api/v1/communes/{WIDE}/policy", {"max_minutes_per_day": 60}),
        ("POST", "/api/v1/live", {"targets": {"devices": [WIDE]}}),
    ],
)
def test_out_of_range_integers_are_422(
    admin_api: tuple[Any, dict[str, str]], method: str, path: str, body: Any
) -> None:
    http, admin = admin_api
    r = http.request(method, path, json=body, headers=admin)
    assert r.status_code == 422, (path, r.status_code, r.text[:300])
    assert r.json()["code"] == "request.invalid", r.text


def test_huge_live_stream_id_without_login_is_422(panel: Panel) -> None:
    r = panel.client().http.get(f"/api/v1/live/{HUGE}/stream")
    assert r.status_code == 422, r.text


def test_duplicate_area_code_is_409(panel: Panel) -> None:
    http, admin = _admin(panel)
    area = {"level": "commune", "name": "Xã Hợp Hòa", "code": "09016"}
    assert http.post("/api/v1/areas", json=area, headers=admin).status_code == 201
    r = http.post("/api/v1/areas", json=area | {"name": "Xã khác"}, headers=admin)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "area.code_taken" and "09016" in r.json()["detail"], r.text
    r = http.post("/api/v1/areas", json=area, headers=admin | {"Accept-Language": "en"})
    assert "already used" in r.json()["detail"]


def test_approving_a_cancelled_broadcast_is_409(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    sha = secrets.token_hex(32)
    with panel.rt.db.session() as s:
        s.add(Media(sha256=sha, original_name="tin.mp3", content_type="audio/ogg", size=1000,
                    duration_s=2.0, codec="opus", source_sha256=sha))  # fmt: skip
    http, admin = _admin(panel)
    start = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    body = {"title": "Bản tin", "media": [sha], "targets": {"communes": [ids["hop_hoa"]]}, "start_at": start}
    bc = http.post("/api/v1/broadcasts", json=body, headers=admin)
    assert bc.status_code == 201, bc.text
    bid = bc.json()["id"]
    assert http.post(f"/api/v1/broadcasts/{bid}/cancel", headers=admin).status_code == 200
    r = http.post(f"/api/v1/broadcasts/{bid}/approve", headers=admin)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "approval.not_draft" and "cancelled" in r.json()["detail"], r.text
