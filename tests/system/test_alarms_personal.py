"""Issue 20 item 9 acceptance (alarms where people are): a station's alarms reach the people of its
area as SMS through the simulated GSM modem (a real pty, AT commands, UCS2) and as Zalo OA messages
to a local HTTP server, one message when an episode opens and one when it is resolved; a user of
another commune gets nothing; quiet hours hold back a non-critical alarm but not a critical one.
The settings are made through the panel's /account/alerts page (own, and an admin for someone else).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from controller.db.models import User
from controller.db.session import Database
from controller.web.accounts import create_user
from firmware_sim.bench import start_simulated_station
from firmware_sim.gsm_modem import GsmModemSim
from firmware_sim.serial_line import PtyLine
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.served_panel import panel_login

pytestmark = pytest.mark.solo  # alarm timing: run alone like test_alarms_e2e
VN = ZoneInfo("Asia/Ho_Chi_Minh")
PASSWORD = "mat-khau-dai-du"
TOKEN = "oa-token-for-tests-only"


class ZaloServer:
    """A local stand-in for openapi.zalo.me: records each request; the first one is refused
    (`error` -32, rate limit) so the client's retry is exercised."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.refused = 0
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if srv.refused == 0:
                    srv.refused += 1
                    answer: dict[str, Any] = {"error": -32, "message": "Request quá giới hạn, thử lại sau"}
                else:
                    srv.requests.append((dict(self.headers), body))
                    answer = {
                        "error": 0,
                        "message": "Success",
                        "data": {
                            "message_id": f"m{len(srv.requests)}",
                            "user_id": body["recipient"]["user_id"],
                        },
                    }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v3.0/oa/message/cs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts_to(self, user_id: str) -> list[str]:
        return [b["message"]["text"] for _h, b in self.requests if b["recipient"]["user_id"] == user_id]


@pytest.fixture
def zalo() -> Iterator[ZaloServer]:
    z = ZaloServer()
    yield z
    z.server.shutdown()
    z.server.server_close()


@pytest.fixture
async def modem() -> AsyncIterator[tuple[GsmModemSim, PtyLine]]:
    sim = GsmModemSim()
    line = PtyLine(sim)
    await line.start()
    yield sim, line
    await line.close()


@pytest.fixture
async def system(
    tmp_path: Path, zalo: ZaloServer, modem: tuple[GsmModemSim, PtyLine]
) -> AsyncIterator[System]:
    sys_ = System(tmp_path / "system", f"sqlite:///{tmp_path / 'controller.db'}", controller_env={
        "COMMUNECAST_ALARM_SMS_PORT": modem[1].path, "COMMUNECAST_ALARM_SMS_RETRY_S": "0.1",
        "COMMUNECAST_ZALO_OA_URL": zalo.url, "COMMUNECAST_ZALO_OA_ACCESS_TOKEN": TOKEN,
        "COMMUNECAST_ZALO_RETRY_S": "0.1",
        "COMMUNECAST_ALARM_OVERHEAT_FOR_S": "0", "COMMUNECAST_ALARM_OFFLINE_AFTER_S": "2",
        "COMMUNECAST_HEALTH_TICK_S": "0.5",
    }, agent_overrides={"telemetry_interval_s": 0.5})  # fmt: skip
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()
        print("---- controller log (tail) ----\n" + sys_.controller.log_tail(4000))


async def set_prefs(system: System, login: str, **fields: str) -> None:
    """Through the panel: log in as `login`, open /account/alerts (?user_id= for someone else), save."""
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as http:
        await panel_login(http, login, PASSWORD if login != "admin" else system.admin_password)
        page = await http.get("/account/alerts", params={"user_id": fields["user_id"]})
        assert page.status_code == 200, page.text[:300]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        r = await http.post("/account/alerts", data={"csrf": csrf.group(1), **fields})
        assert r.status_code == 303, r.text[:500]


def local(iso: str, fmt: str = "%H:%M %d/%m/%Y") -> str:
    """HH:MM dd/mm/yyyy in Vietnam time: how the message names the instant."""
    return datetime.fromisoformat(iso).astimezone(VN).strftime(fmt)


def one_sms(text: str) -> str:
    """What fits in one UCS2 SMS: 70 characters, a longer text cut with "…"."""
    return text if len(text) <= 70 else text[:69].rstrip() + "…"


async def the_alarm(system: System, device_id: int, kind: str, state: str) -> dict[str, Any]:
    rows = await eventually(lambda: system.api_json("GET", f"/api/v1/alarms?state={state}&kind={kind}"),
                            lambda rows: any(a["device_id"] == device_id for a in rows), timeout=15,
                            interval=0.1, what=f"{kind} {state}")  # fmt: skip
    return next(a for a in rows if a["device_id"] == device_id)


async def test_alarms_reach_the_phones_of_the_stations_area(
    system: System, zalo: ZaloServer, modem: tuple[GsmModemSim, PtyLine]
) -> None:
    sim = modem[0]
    (st,) = await system.add_stations(1)
    device = next(d for d in await system.api_json("GET", "/api/v1/devices") if d["id"] == st.device_id)
    name, commune = device["name"], device["commune_id"]
    other = next(c["id"] for c in system.communes if c["id"] != commune)
    db = Database(system.database_url)
    with db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        ids = {
            u: create_user(s, admin, u, PASSWORD, "commune", area).id
            for u, area in (("truc.ban.xa", commune), ("chu.tich.xa", commune), ("can.bo.xa.khac", other))
        }
    db.dispose()
    now = datetime.now(VN)
    await set_prefs(system, "truc.ban.xa", user_id=str(ids["truc.ban.xa"]), phone="0912 000 001", sms="1",
                    zalo_user_id="1000000000001", zalo="1")  # fmt: skip
    # An admin sets quiet hours around now for the chairman (critical alarms still reach him).
    await set_prefs(
        system,
        "admin",
        user_id=str(ids["chu.tich.xa"]),
        phone="+84912000002",
        sms="1",
        quiet_start=f"{now - timedelta(hours=1):%H:%M}",
        quiet_end=f"{now + timedelta(hours=2):%H:%M}",
    )
    await set_prefs(system, "can.bo.xa.khac", user_id=str(ids["can.bo.xa.khac"]), phone="0912000003", sms="1",
                    zalo_user_id="1000000000003", zalo="1")  # fmt: skip

    # 1. A non-critical alarm: the cabinet overheats, then cools down.
    faults = st.running.hardware.faults  # type: ignore[union-attr]
    faults.set("overheat", True)
    hot = await the_alarm(system, st.device_id, "overheating", "open")
    faults.set("overheat", False)
    cooled = await the_alarm(system, st.device_id, "overheating", "resolved")
    heat_open = f"Cảnh báo: Tủ thiết bị quá nóng – {name} lúc {local(hot['opened_at'])}"
    heat_done = f"Đã khắc phục: Tủ thiết bị quá nóng – {name} lúc {local(cooled['resolved_at'])}"
    sms_heat = [
        one_sms(f"Cảnh báo {local(hot['opened_at'], '%H:%M %d/%m')}: Tủ thiết bị quá nóng – {name}"),
        one_sms(f"Đã khắc phục {local(cooled['resolved_at'], '%H:%M %d/%m')}: Tủ thiết bị quá nóng – {name}"),
    ]
    await eventually(lambda: asyncio.sleep(0, sim.texts_to("0912000001")), lambda t: sms_heat[1] in t,
                     timeout=15, what="SMS: overheating resolved")  # fmt: skip

    # 2. The station stops (critical: offline), then comes back.
    await st.running.stop()
    gone = await the_alarm(system, st.device_id, "offline", "open")
    st.running = await start_simulated_station(st.config)
    back = await the_alarm(system, st.device_id, "offline", "resolved")
    off_open = f"Cảnh báo: Trạm mất kết nối – {name} lúc {local(gone['opened_at'])}"
    off_done = f"Đã khắc phục: Trạm mất kết nối – {name} lúc {local(back['resolved_at'])}"
    sms_off = [
        one_sms(f"Cảnh báo {local(gone['opened_at'], '%H:%M %d/%m')}: Trạm mất kết nối – {name}"),
        one_sms(f"Đã khắc phục {local(back['resolved_at'], '%H:%M %d/%m')}: Trạm mất kết nối – {name}"),
    ]
    # Each notifier's queue is in order: once the last message is there, everything before it is too.
    await eventually(lambda: asyncio.sleep(0, sim.texts_to("0912000001")), lambda t: sms_off[1] in t,
                     timeout=15, what="SMS: offline resolved")  # fmt: skip
    await eventually(
        lambda: asyncio.sleep(0, zalo.texts_to("1000000000001")),
        lambda t: any(x.startswith(off_done) for x in t),
        timeout=15,
        what="Zalo: offline resolved",
    )

    # The duty officer: one SMS per change of each episode, in order, the text as the phone shows it.
    assert sim.texts_to("0912000001") == sms_heat + sms_off
    assert (
        sms_off[0]
        == f"Cảnh báo {local(gone['opened_at'], '%H:%M %d/%m')}: Trạm mất kết nối – Cụm loa 01 – Xã Hợp Hòa"
    )
    # In quiet hours: the offline episode only (critical); overheating was held back.
    assert sim.texts_to("+84912000002") == sms_off
    # Another commune's official: nothing on either channel.
    assert sim.texts_to("0912000003") == [] and zalo.texts_to("1000000000003") == []
    # Zalo: the OA API's request shape, the token in the header, a refusal retried.
    assert [t.split("\n")[0] for t in zalo.texts_to("1000000000001")] == [
        heat_open,
        heat_done,
        off_open,
        off_done,
    ]
    headers, body = zalo.requests[0]
    assert headers["access_token"] == TOKEN and headers["Content-Type"].startswith("application/json")
    assert set(body) == {"recipient", "message"} and set(body["message"]) == {"text"}
    assert "Trạm:" in body["message"]["text"] and zalo.refused == 1
    assert all(s.reference > 0 for s in sim.sent) and all(len(s.text) <= 70 for s in sim.sent)
