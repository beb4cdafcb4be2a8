"""The alarm engine on SQLite and PostgreSQL: hysteresis, durations, one active alarm per
station and kind even with two controller replicas, missed broadcasts, offline; and a webhook
that fails before it succeeds is retried until it gets the note."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from controller.app import create_app
from controller.core.config import Settings
from controller.core.security import new_token, token_digest
from controller.db.models import ApiToken, Area, AuditEntry, Device, User
from controller.db.models_health import Alarm
from controller.db.session import Database
from controller.services.alarms.engine import AlarmEngine, Pending
from controller.services.alarms.notify import AlarmNote, NotificationHub, WebhookNotifier
from protocol.messages import Event, EventKind, Telemetry
from testkit.waiting import eventually

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


@pytest.fixture
def db(db: Database) -> Database:
    """The shared migrated database (tests/conftest.py) with one commune and one station."""
    database = db
    with database.session() as s:
        commune = Area(level="commune", name="Xã Kim Long")
        s.add(commune)
        s.flush()
        s.add(Device(uid="spk-a1", name="Cụm loa 1", kind="speaker", commune_id=commune.id, tags=[],
                     reported={}, online=True, last_seen=T0))  # fmt: skip
    return database


def settings(**kw: Any) -> Settings:
    return Settings(alarm_overheat_for_s=30, alarm_mains_for_s=0, alarm_offline_after_s=300, **kw)


def tele(at: float, **fields: Any) -> Pending:
    return Pending(tele={"spk-a1": Telemetry(ts=T0 + timedelta(seconds=at), **fields)})


def states(db: Database) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(a.kind, a.state) for a in s.scalars(select(Alarm).order_by(Alarm.id))]


def test_thresholds_hysteresis_and_duration(db: Database) -> None:
    eng = AlarmEngine(db, settings())
    now = T0 + timedelta(seconds=1)
    # Overheating must last 30 s: the first hot sample only starts the clock.
    assert eng.evaluate(tele(0, cabinet_temp_c=68.0, mains_v=230.0), tick=False, now=now) == []
    assert eng.evaluate(tele(20, cabinet_temp_c=68.0), tick=False, now=now) == []
    notes = eng.evaluate(tele(31, cabinet_temp_c=67.0), tick=False, now=now)
    assert [(n.event, n.kind, n.device_uid) for n in notes] == [("opened", "overheating", "spk-a1")]
    assert notes[0].detail["value"] == 67.0 and notes[0].detail["threshold"] == 60.0
    # Hysteresis: 58 °C is below the limit but not yet cool (clears at 55 °C).
    assert eng.evaluate(tele(40, cabinet_temp_c=58.0), tick=False, now=now) == []
    assert eng.evaluate(tele(50, cabinet_temp_c=54.0), tick=False, now=now)[0].event == "resolved"
    # A blip shorter than the duration opens nothing.
    eng.evaluate(tele(60, cabinet_temp_c=70.0), tick=False, now=now)
    eng.evaluate(tele(70, cabinet_temp_c=40.0), tick=False, now=now)
    assert eng.evaluate(tele(80, cabinet_temp_c=70.0), tick=False, now=now) == []
    # Mains loss (duration 0) opens at once; a sample without the meter neither opens nor clears.
    assert eng.evaluate(tele(90, mains_v=0.0), tick=False, now=now)[0].kind == "mains_loss"
    assert eng.evaluate(tele(100, uptime_s=5.0), tick=False, now=now) == []
    assert eng.evaluate(tele(110, mains_v=190.0), tick=False, now=now) == []  # needs 195 V to clear
    assert eng.evaluate(tele(120, mains_v=229.0), tick=False, now=now)[0].event == "resolved"
    assert states(db) == [("overheating", "resolved"), ("mains_loss", "resolved")]


def test_speaker_line_needs_playing_and_mains(db: Database) -> None:
    eng = AlarmEngine(db, settings())
    now = T0
    idle = {"relay_on": True, "amp_current_a": 0.15, "mains_v": 230.0}
    assert eng.evaluate(tele(0, playing=False, **idle), tick=False, now=now) == []  # idle is normal
    assert eng.evaluate(tele(1, playing=True, **{**idle, "mains_v": 0.0}), tick=False, now=now)[0].kind == \
        "mains_loss"  # no mains: not the line's fault  # fmt: skip
    notes = eng.evaluate(tele(2, playing=True, **idle), tick=False, now=now)
    assert [(n.kind, n.event) for n in notes] == [("mains_loss", "resolved"), ("speaker_line", "opened")]
    assert eng.evaluate(tele(3, playing=False, **idle), tick=False, now=now) == []  # cannot tell: stays
    assert eng.evaluate(tele(4, playing=True, relay_on=True, amp_current_a=0.9, mains_v=230.0),
                        tick=False, now=now)[0].event == "resolved"  # fmt: skip


def test_two_replicas_open_one_alarm_and_events_and_offline(db: Database) -> None:
    a, b = AlarmEngine(db, settings()), AlarmEngine(db, settings())
    assert len(a.evaluate(tele(0, mains_v=0.0), tick=False, now=T0)) == 1
    assert b.evaluate(tele(1, mains_v=0.0), tick=False, now=T0) == []  # already active
    missed = Event(id=uuid.uuid4().hex, kind=EventKind.MISSED, ts=T0, item_id="b7", broadcast_id=7,
                   reason="start passed before it could play")  # fmt: skip
    notes = a.evaluate(Pending(events=[("spk-a1", missed), ("spk-a1", missed)]), tick=False, now=T0)
    assert [(n.kind, n.detail["item_id"]) for n in notes] == [("missed_broadcast", "b7")]
    played = Event(id=uuid.uuid4().hex, kind=EventKind.PLAY_FINISHED, ts=T0, item_id="b8")
    assert b.evaluate(Pending(events=[("spk-a1", played)]), tick=False, now=T0)[0].event == "resolved"
    # Offline: silent for longer than alarm_offline_after_s, found by the periodic tick.
    assert a.evaluate(Pending(), tick=True, now=T0 + timedelta(seconds=200)) == []
    notes = a.evaluate(Pending(), tick=True, now=T0 + timedelta(seconds=301))
    assert [(n.kind, n.event) for n in notes] == [("offline", "opened")]
    assert a.evaluate(Pending(), tick=True, now=T0 + timedelta(seconds=400)) == []
    with db.session() as s:
        d = s.scalar(select(Device))
        d.last_seen, d.online = T0 + timedelta(seconds=401), True
    assert a.evaluate(Pending(), tick=True, now=T0 + timedelta(seconds=402))[0].event == "resolved"
    assert states(db) == [("mains_loss", "open"), ("missed_broadcast", "resolved"), ("offline", "resolved")]


async def test_webhook_is_retried_until_it_succeeds() -> None:
    got: list[dict[str, Any]] = []
    failures = [503, 500]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status = failures.pop(0) if failures else 200
            if status == 200:
                got.append(body)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hub = NotificationHub([WebhookNotifier(f"http://127.0.0.1:{server.server_address[1]}/")], backoff_s=0.05)
    task = asyncio.create_task(hub.run())
    try:
        await asyncio.sleep(0)
        hub.publish([AlarmNote("opened", 1, 1, "spk-a1", "Cụm loa 1", "disk_low", "open", T0,
                               detail={"value": 120.0})])  # fmt: skip
        await eventually(lambda: asyncio.sleep(0, got), bool, timeout=5, what="the webhook delivered")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.shutdown()
        server.server_close()
    assert got[0]["event"] == "alarm.opened" and got[0]["alarm"]["kind"] == "disk_low"
    assert got[0]["text"]["vi"] == "[communecast] Cảnh báo: Sắp hết dung lượng thẻ nhớ – Cụm loa 1"
    assert failures == []


def test_led_board_unreachable_and_no_speaker_rules(db: Database) -> None:
    with db.session() as s:
        s.add(Device(uid="led-1", name="Bảng điện tử 1", kind="led", commune_id=s.scalar(select(Area.id)),
                     tags=[], reported={}))  # fmt: skip
    eng = AlarmEngine(db, settings(alarm_led_for_s=0))
    sample = {"relay_on": True, "playing": True, "amp_current_a": 0.0, "led_reachable": False}
    batch = Pending(tele={"led-1": Telemetry(ts=T0, **sample)})
    assert [n.kind for n in eng.evaluate(batch, tick=False, now=T0)] == ["led_unreachable"]
    batch = Pending(tele={"led-1": Telemetry(ts=T0, led_reachable=True)})
    notes = eng.evaluate(batch, tick=False, now=T0)
    assert [(n.kind, n.event) for n in notes] == [("led_unreachable", "resolved")]


def test_alarm_api_is_scoped_to_the_users_area(db: Database, tmp_path: Path) -> None:
    """A commune's official sees and acknowledges only their commune's alarms; a viewer none."""
    with db.session() as s:
        home = s.scalar(select(Area))
        other = Area(level="commune", name="Xã Hợp Hòa")
        s.add(other)
        s.flush()
        s.add(Device(uid="spk-b1", name="Cụm loa Hợp Hòa", kind="speaker", commune_id=other.id, tags=[],
                     reported={}))  # fmt: skip
        tokens = {}
        for name, role, area in (("canbo", "commune", home.id), ("xem", "viewer", None)):
            user = User(username=name, password_hash="-", role=role, area_id=area)
            s.add(user)
            s.flush()
            tokens[name] = new_token()
            s.add(ApiToken(token_hash=token_digest(tokens[name]), user_id=user.id,
                           expires_at=datetime.now(UTC) + timedelta(hours=1)))  # fmt: skip
    eng = AlarmEngine(db, settings())
    now = datetime.now(UTC)
    batch = Pending(tele={u: Telemetry(ts=now, mains_v=0.0) for u in ("spk-a1", "spk-b1")})
    mine, theirs = sorted(eng.evaluate(batch, tick=False, now=now), key=lambda n: n.device_uid)
    settings_ = Settings(data_dir=tmp_path)
    app = create_app(settings_)
    app.state.runtime = SimpleNamespace(settings=settings_, db=db, notifications=None)
    http = TestClient(app)
    canbo = {"Authorization": f"Bearer {tokens['canbo']}"}

    rows = http.get("/api/v1/alarms?state=open", headers=canbo).json()
    assert [(r["device_uid"], r["kind"], r["state"]) for r in rows] == [("spk-a1", "mains_loss", "open")]
    assert http.post(f"/api/v1/alarms/{theirs.alarm_id}/ack", headers=canbo).status_code == 403
    viewer = {"Authorization": f"Bearer {tokens['xem']}", "Accept-Language": "vi"}
    r = http.post(f"/api/v1/alarms/{mine.alarm_id}/ack", headers=viewer)
    assert r.status_code == 403 and "không có quyền" in r.json()["detail"]
    r = http.post(f"/api/v1/alarms/{mine.alarm_id}/ack", headers=canbo, json={"note": "Đã gọi điện lực"})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    assert r.json()["ack_note"] == "Đã gọi điện lực"
    with db.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.object_type == "alarm")).one()
        assert (entry.action, entry.object_id) == ("alarm.acknowledge", str(mine.alarm_id))
    assert http.get("/api/v1/alarms?state=nonsense", headers=canbo).status_code == 422
