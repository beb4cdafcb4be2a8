"""Issue 20: stations in bulk over the API (`POST /api/v1/devices/bulk`, `GET /api/v1/devices/export.csv`),
the same use case as the panel's stations list (controller/usecases/stations.py), station by station.

A technician of the stations' commune: a volume on two loudspeakers is sent (signed commands reach a
real Mosquitto) and shows on the panel's station page; an LED board in the same call is refused as
"not a loudspeaker", another commune's station as "not found or not yours" (the same words as an
unknown id: nothing about it is revealed, nothing is sent). The test pattern goes to boards only; a
retire lists what would stop until confirmed, then the panel's list no longer shows them. A
technician of another commune acts on nothing; a viewer and a commune operator get 403, an
anonymous client 401. The CSV is the panel's, byte for byte, and only the caller's area.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from communecast.mosquitto import MosquittoNotFound, PrivateMosquitto, free_port
from controller.db.models import Device, User
from controller.db.models_ops import DiagnosticCommandRow
from controller.services import devices
from controller.web import accounts
from tests.support.browser import ADMIN_PW, PW, Panel, PanelClient, running_panel

BULK, CSV = "/api/v1/devices/bulk", "/api/v1/devices/export.csv"
CTL_USER, CTL_PW = "ctl", "mat-khau-may-chu"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    b = PrivateMosquitto(tmp_path / "broker", port=free_port(), controller_user=CTL_USER,
                         controller_password=CTL_PW, dynsec=False)  # fmt: skip
    try:
        b.start()
    except MosquittoNotFound as exc:
        pytest.skip(str(exc))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def panel(tmp_path: Path, database_url: str, broker: PrivateMosquitto) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url, mqtt_port=broker.port, mqtt_username=CTL_USER,
                       mqtt_password=CTL_PW) as p:  # fmt: skip
        deadline = time.monotonic() + 15
        while not p.rt.station_commands.bus.connected.is_set():
            assert time.monotonic() < deadline, "the controller did not connect to the broker"
            time.sleep(0.05)
        yield p


class Commands:
    """Every signed command the broker carries to a station (cc/v1/.../cmd), by topic."""

    def __init__(self, broker: PrivateMosquitto) -> None:
        self.topics: list[str] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-listener")
        self.client.username_pw_set(CTL_USER, CTL_PW)
        self.client.on_connect = lambda c, *_: c.subscribe("cc/v1/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, m: Any) -> None:
        if m.topic.endswith("/cmd"):
            self.topics.append(m.topic)

    def wait_for(self, n: int) -> list[str]:
        deadline = time.monotonic() + 10
        while len(self.topics) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return sorted(self.topics)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _seed(panel: Panel) -> dict[str, Any]:
    ids = panel.seed(stations_per_commune=2)
    with panel.rt.db.session() as s:
        board = devices.create(s, devices.DeviceCreate(name="Bảng điện tử chợ Kim Long", kind="led",
                                                       commune_id=ids["kim_long"]), None)  # fmt: skip
        ids["board"] = board.id
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        accounts.create_user(s, admin, "kythuat.kimlong", PW, "technician", ids["kim_long"])
        accounts.create_user(s, admin, "kythuat.xuanhoa", PW, "technician", ids["xuan_hoa"])
    ids["kl"] = ids["devices"][ids["kim_long"]]
    ids["hh"] = ids["devices"][ids["hop_hoa"]]
    return ids


def _api(panel: Panel, username: str, password: str = PW, lang: str = "vi") -> tuple[Any, dict[str, str]]:
    headers = panel.bearer(username, password) | {"Accept-Language": lang}
    return panel.client().http, headers


def _commands(panel: Panel) -> list[tuple[int, str, dict[str, Any]]]:
    with panel.rt.db.session() as s:
        rows = s.scalars(select(DiagnosticCommandRow).order_by(DiagnosticCommandRow.device_id))
        return [(r.device_id, r.action, r.params) for r in rows]


def _active(panel: Panel) -> int:
    with panel.rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Device).where(Device.retired_at.is_(None))) or 0)


def _panel_as(panel: Panel, username: str) -> PanelClient:
    c = panel.client()
    c.login(username, PW)
    return c


def test_volume_and_test_pattern_per_station_as_the_panel_shows(
    panel: Panel, broker: PrivateMosquitto
) -> None:
    ids = _seed(panel)
    http, tech = _api(panel, "kythuat.kimlong")
    listener = Commands(broker)
    try:
        chosen = [*ids["kl"], ids["board"], ids["hh"][0], 99999]
        body = {"action": "volume", "volume": 35, "device_ids": chosen}
        r = http.post(BULK, json=body, headers=tech)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["action"] == "volume" and out["done"] == 2 and out["refused"] == 3
        results = {x["device_id"]: x for x in out["results"]}
        assert [x["device_id"] for x in out["results"]] == body["device_ids"]  # the order given
        for d in ids["kl"]:
            assert results[d]["result"] == "done" and results[d]["command_id"], results[d]
            assert results[d]["name"].endswith("Xã Kim Long")
        board = results[ids["board"]]
        assert board["result"] == "refused" and board["code"] == "stations.not_a_speaker"
        assert board["status"] == 422 and "không phải cụm loa" in board["detail"]
        # Another commune's station and an unknown one: the same answer, nothing revealed.
        other, unknown = results[ids["hh"][0]], results[99999]
        for x in (other, unknown):
            assert x["result"] == "refused" and x["status"] == 404
            assert x["code"] == "stations.not_found_or_not_yours" and "name" not in x and "kind" not in x
        assert other["detail"].replace(str(ids["hh"][0]), "#") == unknown["detail"].replace("99999", "#")
        assert _commands(panel) == [(d, "set_volume", {"volume": 35}) for d in ids["kl"]]
        uids = {d.id: d.uid for d in _devices(panel)}
        assert listener.wait_for(2) == sorted(f"cc/v1/dev/{uids[d]}/cmd" for d in ids["kl"])

        # The panel's station page shows the API's command; the API follows it by its id.
        page = _panel_as(panel, "kythuat.kimlong").http.get(f"/ops/stations/{ids['kl'][0]}").text
        assert 'id="diag-results"' in page and "Đặt âm lượng" in page and "Đang chờ" in page
        first = ids["kl"][0]
        cmd = http.get(f"/api/v1/devices/{first}/diagnostics/{results[first]['command_id']}", headers=tech)
        assert cmd.status_code == 200 and cmd.json()["params"] == {"volume": 35}
        assert cmd.json()["state"] == "pending"

        # The test pattern: boards only; a tone: loudspeakers only.
        r = http.post(BULK, json={"action": "led_test", "device_ids": [ids["board"], first]}, headers=tech)
        by = {x["device_id"]: x for x in r.json()["results"]}
        assert by[ids["board"]]["result"] == "done"
        assert by[ids["kl"][0]]["code"] == "stations.not_an_led_board"
        r = http.post(BULK, json={"action": "test_tone", "device_ids": [ids["kl"][1]]}, headers=tech)
        assert r.json()["done"] == 1
        assert len(listener.wait_for(4)) == 4

        # In English, with the request's problems in words.
        _h, en = _api(panel, "kythuat.kimlong", lang="en")
        r = http.post(BULK, json={"action": "volume", "device_ids": [ids["board"]]}, headers=en)
        assert r.status_code == 422 and r.json()["detail"] == "Say which volume (0–100) to set."
        r = http.post(BULK, json={"action": "volume", "volume": 35, "device_ids": [ids["board"]]}, headers=en)
        words = f"Station {ids['board']} is not a loudspeaker: no test tone or volume for it."
        assert r.json()["results"][0]["detail"] == words
        for bad in ({"action": "volume", "volume": 150, "device_ids": [ids["kl"][0]]},
                    {"action": "reboot", "device_ids": [ids["kl"][0]]}):
            r = http.post(BULK, json=bad, headers=tech)
            assert r.status_code == 422 and r.json()["code"] == "request.invalid", r.text
        r = http.post(BULK, json={"action": "test_tone", "device_ids": []}, headers=tech)
        assert r.status_code == 422 and "Chưa chọn trạm nào" in r.json()["detail"]
        r = http.post(BULK, json={"action": "test_tone", "device_ids": list(range(1, 502))}, headers=tech)
        assert r.status_code == 422 and "tối đa 500" in r.json()["detail"]
    finally:
        listener.close()


def _devices(panel: Panel) -> list[Device]:
    with panel.rt.db.session() as s:
        return list(s.scalars(select(Device)))


def test_who_may_act(panel: Panel) -> None:
    ids = _seed(panel)
    every = [*ids["kl"], ids["board"], *ids["hh"]]
    anon = panel.client().http
    assert anon.post(BULK, json={"action": "test_tone", "device_ids": every}).status_code == 401
    assert anon.get(CSV).status_code == 401

    # A viewer and a commune operator: no right to test or retire stations at all.
    for who in ("nguoixem", "canbo.hophoa"):
        http, h = _api(panel, who)
        for action in ("test_tone", "retire"):
            r = http.post(BULK, json={"action": action, "device_ids": ids["hh"], "confirm": True}, headers=h)
            assert r.status_code == 403 and r.json()["code"] == "auth.forbidden", (who, r.text)

    # Another commune's technician: every station refused, nothing sent, nothing retired.
    http, other = _api(panel, "kythuat.xuanhoa")
    for body in ({"action": "volume", "volume": 10, "device_ids": every},
                 {"action": "retire", "device_ids": every, "confirm": True}):
        r = http.post(BULK, json=body, headers=other)
        assert r.status_code == 200 and r.json()["done"] == 0 and r.json()["refused"] == len(every), r.text
        assert {x["code"] for x in r.json()["results"]} == {"stations.not_found_or_not_yours"}
        assert all("name" not in x for x in r.json()["results"])
    assert _commands(panel) == [] and _active(panel) == 7

    # Retire: first what would stop (nothing changes), then for real; only the caller's area.
    http, tech = _api(panel, "kythuat.kimlong")
    ask = http.post(BULK, json={"action": "retire", "device_ids": [*ids["kl"], ids["hh"][0]]}, headers=tech)
    assert ask.status_code == 200 and ask.json()["confirmed"] is False
    assert [x["result"] for x in ask.json()["results"]] == ["to_confirm", "to_confirm", "refused"]
    assert _active(panel) == 7
    body = {"action": "retire", "device_ids": [*ids["kl"], ids["hh"][0]], "confirm": True}
    done = http.post(BULK, json=body, headers=tech)
    assert done.status_code == 200 and done.json()["done"] == 2 and done.json()["confirmed"] is True
    assert _active(panel) == 5
    admin = panel.client()
    admin.login("admin", ADMIN_PW)
    listing = admin.http.get("/stations").text  # the panel's list: Kim Long's gone, Hợp Hòa's kept
    assert "Cụm loa 1 – Xã Kim Long" not in listing and "Cụm loa 1 – Xã Hợp Hòa" in listing
    again = http.post(BULK, json={"action": "test_tone", "device_ids": ids["kl"]}, headers=tech)
    assert {x["code"] for x in again.json()["results"]} == {"stations.not_found_or_not_yours"}


def test_csv_export_is_the_panels_and_only_the_callers_area(panel: Panel) -> None:
    ids = _seed(panel)
    for who, communes in (("kythuat.kimlong", {"Xã Kim Long"}), ("canbo.hophoa", {"Xã Hợp Hòa"}),
                          ("nguoixem", {"Xã Kim Long", "Xã Hợp Hòa", "Xã Xuân Hòa"})):
        http, h = _api(panel, who)
        api = http.get(CSV, headers=h)
        assert api.status_code == 200 and api.headers["content-type"].startswith("text/csv"), api.text
        assert api.content.startswith(b"\xef\xbb\xbf")
        on_panel = _panel_as(panel, who).http.get("/stations.csv")
        assert api.content == on_panel.content, who
        rows = api.content.decode("utf-8-sig").splitlines()
        assert rows[0] == "name,kind,commune_code,commune_id,commune,lat,lon,tags,uid,online"
        assert {r.split(",")[4] for r in rows[1:]} == communes, who
    http, h = _api(panel, "nguoixem")
    filtered = http.get(CSV, params={"kind": "led"}, headers=h).content.decode("utf-8-sig").splitlines()
    assert len(filtered) == 2 and filtered[1].startswith("Bảng điện tử chợ Kim Long,led")
    assert filtered == _panel_as(panel, "nguoixem").http.get("/stations.csv?kind=led").content.decode(
        "utf-8-sig").splitlines()
    # Another commune asked for explicitly: still only the caller's stations (here none).
    http, h = _api(panel, "kythuat.kimlong")
    assert len(http.get(CSV, params={"commune_id": ids["hop_hoa"]}, headers=h).text.splitlines()) == 1
    assert http.get(CSV, params={"state": "bogus"}, headers=h).status_code == 422
