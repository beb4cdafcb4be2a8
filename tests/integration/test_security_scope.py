"""Area scope on API reads and device management (issue 16 item 7).

Xã Hợp Hòa ("A") and Xã Xuân Hòa ("B") each have a speaker, an LED board, a broadcast, a
schedule, an LED text, a play-log row and a station event. A commune operator and a technician
of A: reading one of B's objects is a 404 (as if it did not exist), a list holds only A's items,
an action on B's station or into B is a 403 that names the area, and nothing in B changes.
The checks live in controller/core/permissions.py and the services both the API and the panel call.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from controller.db.models import Device, DeviceEvent, PlayLog, User
from controller.db.models_enrollment import EnrollmentCode
from controller.services import devices
from controller.services.telemetry import METRICS
from controller.web import accounts
from testkit.pgtemp import fresh_database
from tests.integration.test_api_scope import _media, _schedule, _token
from tests.support.browser import PW, Panel, running_panel

START = "2030-01-01T06:00:00+07:00"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One seeded controller per database for the whole module (seeding per test would take
    minutes); the tests only read, or assert that a refused action changed nothing."""
    tmp = tmp_path_factory.mktemp("scope")
    if request.param == "sqlite":
        with running_panel(tmp, f"sqlite:///{tmp / 'controller.db'}") as panel:
            yield _seed(panel)
        return
    url, drop = fresh_database(request.getfixturevalue("postgres_server"), prefix="cc_test")
    try:
        with running_panel(tmp, url) as panel:
            yield _seed(panel)
    finally:
        drop()


def _seed(panel: Panel) -> dict[str, Any]:
    ids = panel.seed(stations_per_commune=1)
    a, b = ids["hop_hoa"], ids["xuan_hoa"]
    sha = _media(panel)
    with panel.rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        accounts.create_user(s, admin, "kythuat.hophoa", PW, "technician", a)
        boards = {
            c: devices.create(s, devices.DeviceCreate(name="Bảng UBND", kind="led", commune_id=c), None).id
            for c in (a, b)
        }
    http = panel.client().http
    root = _token(panel, "admin", panel.settings.admin_password)
    w: dict[str, Any] = {
        "panel": panel,
        "http": http,
        "a": a,
        "b": b,
        "boards": boards,
        "speaker": {c: ids["devices"][c][0] for c in (a, b)},
        "tokens": {
            "commune": _token(panel, "canbo.hophoa"),
            "technician": _token(panel, "kythuat.hophoa"),
            "admin": root,
        },
    }
    for key, path, body in (
        (
            "broadcast",
            "/api/v1/broadcasts",
            lambda c: {
                "title": f"Tin {c}",
                "media_sha256": sha,
                "targets": {"communes": [c]},
                "start_at": START,
            },
        ),
        ("schedule", "/api/v1/schedules", lambda c: _schedule(sha, {"communes": [c]})),
        ("led", "/api/v1/led-messages", lambda c: {"text": "Họp dân", "targets": {"communes": [c]}}),
    ):
        for c in (a, b):
            r = http.post(path, json=body(c), headers=root)
            assert r.status_code in (200, 201), r.text
            w.setdefault(key, {})[c] = r.json()["id"]
    now = datetime.now(UTC)
    with panel.rt.db.session() as s:
        for c in (a, b):
            dev = w["speaker"][c]
            s.add(
                PlayLog(
                    device_id=dev,
                    broadcast_id=w["broadcast"][c],
                    item_id=f"b{w['broadcast'][c]}",
                    status="played",
                    started_at=now - timedelta(minutes=5),
                    finished_at=now,
                )
            )
            s.add(DeviceEvent(id=f"ev-{dev}", device_id=dev, kind="fault", ts=now, body={"kind": "fault"}))
    return w


def _get(w: dict[str, Any], who: str, path: str) -> Any:
    return w["http"].get(path.format(**_names(w)), headers=w["tokens"][who])


def _names(w: dict[str, Any]) -> dict[str, Any]:
    b = w["b"]
    return {
        "commune": b,
        "dev": w["speaker"][b],
        "board": w["boards"][b],
        "bc": w["broadcast"][b],
        "sc": w["schedule"][b],
        "metric": METRICS[0],
    }


WHO = ("commune", "technician")
HIDDEN = [  # another area's object read directly: 404
    "/api/v1/devices/{dev}/events",
    "/api/v1/devices/{dev}/telemetry?metric={metric}",
    "/api/v1/devices/{dev}/diagnostics",
    "/api/v1/devices/{board}/preview.png",
    "/api/v1/devices/{board}/led-health",
    "/api/v1/broadcasts/{bc}",
    "/api/v1/schedules/{sc}",
    "/api/v1/schedules/{sc}/occurrences?from=2030-01-01T00:00:00&to=2030-01-05T00:00:00",
    "/api/v1/communes/{commune}/policy",
]


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("path", HIDDEN)
def test_reading_another_areas_object_is_not_found(world: dict[str, Any], who: str, path: str) -> None:
    r = _get(world, who, path)
    assert r.status_code == 404, (path, r.status_code, r.text[:200])


def _ids_in(w: dict[str, Any], key: str) -> tuple[set[int], set[int]]:
    return {w[key][w["a"]]}, {w[key][w["b"]]}


LISTS = {  # path -> how to pick the area-bound ids out of the answer, and what they should be
    "/api/v1/devices": lambda w, rows: ({r["commune_id"] for r in rows}, {w["a"]}),
    "/api/v1/broadcasts": lambda w, rows: ({r["id"] for r in rows}, {w["broadcast"][w["a"]]}),
    "/api/v1/schedules": lambda w, rows: ({r["id"] for r in rows}, {w["schedule"][w["a"]]}),
    "/api/v1/led-messages": lambda w, rows: ({r["id"] for r in rows}, {w["led"][w["a"]]}),
    "/api/v1/play-log": lambda w, rows: ({r["device_id"] for r in rows}, {w["speaker"][w["a"]]}),
    "/api/v1/play-log?device_id={dev}": lambda w, rows: ({r["device_id"] for r in rows}, set()),
    "/api/v1/reports/monthly": lambda w, rows: ({r["commune_id"] for r in rows}, {w["a"]}),
}


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("path", list(LISTS))
def test_lists_hold_only_the_callers_area(world: dict[str, Any], who: str, path: str) -> None:
    r = _get(world, who, path)
    assert r.status_code == 200, r.text
    got, want = LISTS[path](world, r.json())
    assert got == want, (path, got, want)


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_play_log_export_holds_only_the_callers_area(world: dict[str, Any], who: str, fmt: str) -> None:
    for query in ("", f"?commune={world['b']}"):
        r = _get(world, who, f"/api/v1/reports/play-log.{fmt}{query}")
        assert r.status_code == 200, r.text
        if fmt == "csv":
            text = r.content.decode("utf-8-sig")
            assert "Xuân Hòa" not in text
            assert ("Hợp Hòa" in text) is (query == "")
        else:
            from openpyxl import load_workbook

            sheet = load_workbook(io.BytesIO(r.content)).active
            cells = {str(c.value) for row in sheet.iter_rows() for c in row}
            assert "Xã Xuân Hòa" not in cells


def test_unscoped_admin_still_sees_every_area(world: dict[str, Any]) -> None:
    for path, pick in LISTS.items():
        if "{dev}" in path:
            continue
        got, want = pick(world, _get(world, "admin", path).json())
        assert want < got, path
    assert _get(world, "admin", "/api/v1/broadcasts/{bc}").status_code == 200
    assert _get(world, "admin", "/api/v1/devices/{dev}/events").json()


def _station_b(w: dict[str, Any]) -> Device:
    with w["panel"].rt.db.session() as s:
        device = s.get(Device, w["speaker"][w["b"]])
        assert device is not None
        s.expunge(device)
        return device


def _count_in(w: dict[str, Any], commune: int) -> int:
    with w["panel"].rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(Device).where(Device.commune_id == commune)) or 0


def _codes_for(w: dict[str, Any], device_id: int) -> int:
    with w["panel"].rt.db.session() as s:
        q = select(func.count()).select_from(EnrollmentCode).where(EnrollmentCode.device_id == device_id)
        return s.scalar(q) or 0


def _csv(commune: int) -> dict[str, Any]:
    data = f"name,kind,commune_id\nCụm loa mới,speaker,{commune}\n".encode()
    return {"files": {"file": ("tram.csv", data, "text/csv")}}


ACTIONS: dict[str, tuple[str, Any]] = {  # technician of A on B's station or into B: 403
    "create": (
        "/api/v1/devices",
        lambda w: {"json": {"name": "Loa lạ", "kind": "speaker", "commune_id": w["b"]}},
    ),
    "enroll": ("/api/v1/devices/{dev}/enrollment", lambda w: {}),
    "retire": ("/api/v1/devices/{dev}/retire", lambda w: {}),
    "import": ("/api/v1/devices/import", lambda w: _csv(w["b"])),
    "diagnostic": ("/api/v1/devices/{dev}/diagnostics", lambda w: {"json": {"action": "ping"}}),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_technician_cannot_manage_another_areas_station(world: dict[str, Any], action: str) -> None:
    w = world
    before, codes = _count_in(w, w["b"]), _codes_for(w, w["speaker"][w["b"]])
    path, extra = ACTIONS[action]
    r = w["http"].post(path.format(**_names(w)), headers=w["tokens"]["technician"], **extra(w))
    assert r.status_code == 403, (action, r.status_code, r.text[:200])
    if action != "diagnostic":
        assert "Xuân Hòa" in r.json()["detail"] and "địa bàn" in r.json()["detail"], r.text
    assert _station_b(w).retired_at is None
    assert _count_in(w, w["b"]) == before
    assert _codes_for(w, w["speaker"][w["b"]]) == codes


def test_technician_still_manages_their_own_area(world: dict[str, Any]) -> None:
    w, who = world, world["tokens"]["technician"]
    r = w["http"].post(
        "/api/v1/devices", headers=who, json={"name": "Loa mới", "kind": "speaker", "commune_id": w["a"]}
    )
    assert r.status_code == 201, r.text
    mine = r.json()["id"]
    assert w["http"].post(f"/api/v1/devices/{mine}/enrollment", headers=who).status_code == 201
    r = w["http"].post("/api/v1/devices/import", headers=who, **_csv(w["a"]))
    assert r.status_code == 201, r.text
    assert w["http"].post(f"/api/v1/devices/{mine}/retire", headers=who).status_code == 200
    assert w["http"].get(f"/api/v1/devices/{mine}/events", headers=who).status_code == 200


def test_commune_operator_cannot_issue_credentials_or_act_on_b(world: dict[str, Any]) -> None:
    w = world
    op = w["tokens"]["commune"]
    dev = w["speaker"][w["b"]]
    assert w["http"].post(f"/api/v1/devices/{dev}/credentials", headers=op).status_code == 403
    assert w["http"].post(f"/api/v1/devices/{dev}/retire", headers=op).status_code == 403
    assert _station_b(w).retired_at is None


PANEL_LOGIN = {"commune": "canbo.hophoa", "technician": "kythuat.hophoa"}


@pytest.mark.parametrize("who", WHO)
def test_panel_and_api_give_the_same_answer(world: dict[str, Any], who: str) -> None:
    """The panel's read pages go through the API's use cases (controller/usecases): B's
    broadcast, schedule and LED text are not found on both, A's are found on both."""
    w = world
    web = w["panel"].client()
    web.login(PANEL_LOGIN[who], PW)

    def api(path: str) -> Any:
        return w["http"].get(path, headers=w["tokens"][who])

    schedule_page = web.http.get("/schedules")
    led_page = web.http.get("/led")
    assert schedule_page.status_code == 200 and led_page.status_code == 200
    api_schedules = {r["id"] for r in api("/api/v1/schedules").json()}
    api_led = {r["id"] for r in api("/api/v1/led-messages").json()}
    for commune, found in ((w["a"], True), (w["b"], False)):
        bc, sc, text = w["broadcast"][commune], w["schedule"][commune], w["led"][commune]
        assert api(f"/api/v1/broadcasts/{bc}").status_code == (200 if found else 404)
        page = web.http.get(f"/playlog?broadcast_id={bc}")
        assert page.status_code == 200, page.text[:300]
        assert ('id="broadcast-summary"' in page.text) is found, (who, commune)

        assert api(f"/api/v1/schedules/{sc}").status_code == (200 if found else 404)
        assert (sc in api_schedules) is found
        assert (f'id="schedule-{sc}"' in schedule_page.text) is found, (who, commune)
        assert (text in api_led) is found
        if who == "commune":  # the edit page and the LED text's cancel button need the right to edit
            assert web.http.get(f"/schedules/{sc}/edit").status_code == (200 if found else 404)
            assert (f'action="/led/{text}/cancel"' in led_page.text) is found, (who, commune)
