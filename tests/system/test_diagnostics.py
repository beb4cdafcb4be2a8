"""Issue 6, item 4: remote diagnostics are signed commands with result events, over the real broker.

One station of a whole running system (private Mosquitto with auth, controller subprocess,
simulated cabinet on a pty, SimAudioSink): test tone, relay click, set volume, fetch logs and
restart through the API; then messages an attacker or a buggy tool could send (an action
outside the enum, signed with the real key; a valid action signed with a wrong key) are
refused and reported, and nothing runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import select

from communecast.stations import ApiClient
from controller.db.models import Area, Device, User
from controller.db.models_ops import DiagnosticCommandRow
from controller.db.session import Database
from controller.services import diagnostics
from controller.services.ingest import Ingest
from controller.web.accounts import create_user
from device_agents.common.config import AgentConfig
from device_agents.common.logbuffer import redact
from device_agents.host.diagnostics import RESTART_EXIT_CODE
from device_agents.led.bx5k import Bx5kController
from device_agents.led.role import led_station
from firmware_sim.led.server import SimLedBoard
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import CommandKind, Event, EventKind, LedContent, LedMessage
from protocol.signing import KeyPair, Signer
from testkit.api import Api
from testkit.harness import CONTROLLER_USER, Station, System
from testkit.waiting import eventually
from tests.support.audio import tone as tone_file


async def diagnose(system: System, st: Station, action: str, **params: Any) -> dict[str, Any]:
    r = await system.api("POST", f"/api/v1/devices/{st.device_id}/diagnostics",
                         json={"action": action, "params": params})
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["state"] == "pending"
    return await eventually(
        lambda: system.api_json("GET", f"/api/v1/devices/{st.device_id}/diagnostics/{sent['id']}"),
        lambda d: d["state"] != "pending", timeout=15, what=f"result of {action}",
    )


async def publish_raw(system: System, uid: str, payload: bytes) -> None:
    """What anyone holding broker credentials could publish, bypassing the controller's API."""
    async with aiomqtt.Client("127.0.0.1", system.broker.port, username=CONTROLLER_USER,
                              password=system.mqtt_password, identifier="diag-test-raw") as client:
        await client.publish(topics.cmd(uid), payload, qos=1)


async def rejection(system: System, st: Station, ref: str) -> dict[str, Any]:
    events = await eventually(
        lambda: system.api_json("GET", f"/api/v1/devices/{st.device_id}/events?kind=rejected"),
        lambda evs: any(e.get("ref") == ref for e in evs), timeout=10, what=f"rejection of {ref}",
    )
    return next(e for e in events if e.get("ref") == ref)


# The whole system once (SQLite; the update round trip runs on PostgreSQL): the DB-touching part,
# results folded into commands by ingest, runs on both below.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_diagnostics_round_trip_and_refusals(system: System, api: Api, tmp_path: Path) -> None:
    (st,) = await system.add_stations(1)
    await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                     lambda ds: all(d["online"] for d in ds), timeout=10, what="station online")
    cabinet = st.running.hardware.cabinet  # type: ignore[union-attr]

    # Test tone: made on the station, heard on the (simulated) horn, amplifier current measured.
    tone = await diagnose(system, st, "test_tone", seconds=1.5, frequency_hz=1000, volume=70)
    assert tone["state"] == "done", tone
    played = await st.sink.wait_for(lambda p: p.files == (), timeout=5)
    assert played.completed and abs(played.duration_s - 1.5) < 0.01 and played.volume == 70
    res = tone["result"]
    assert res["ok"] and res["completed"] and abs(res["played_s"] - 1.5) < 0.3
    assert res["relay_on"] is True
    assert res["amp_current_a"] > res["amp_current_idle_a"] + 0.05, res  # the horn line draws current

    # A bulletin always wins: one that starts during a long tone cuts it and plays in full.
    media = await api.upload(tone_file(tmp_path / "bulletin.wav", freq=440, seconds=2.5))
    r = await system.api("POST", f"/api/v1/devices/{st.device_id}/diagnostics",
                         json={"action": "test_tone", "params": {"seconds": 10}})
    assert r.status_code == 202, r.text
    await st.sink.wait_playing(timeout=5)
    start_at = datetime.now(UTC) + timedelta(seconds=2)
    bc = await system.api("POST", "/api/v1/broadcasts", json={
        "title": "Thông báo", "media_sha256": media["sha256"], "targets": {"devices": [st.device_id]},
        "start_at": start_at.isoformat(), "priority": "normal"})  # fmt: skip
    assert bc.status_code == 201, bc.text
    cut = await eventually(
        lambda: system.api_json("GET", f"/api/v1/devices/{st.device_id}/diagnostics/{r.json()['id']}"),
        lambda d: d["state"] != "pending", timeout=15, what="the long tone's result")
    assert cut["state"] == "error" and cut["result"]["error"] == "interrupted", cut
    assert cut["result"]["completed"] is False and cut["result"]["played_s"] < 9
    await st.sink.wait_playing(timeout=10)  # the bulletin is on air now
    busy = await diagnose(system, st, "test_tone", seconds=1)  # asked while the bulletin plays
    assert busy["state"] == "error" and busy["result"]["error"] == "busy", busy
    bulletin = await st.sink.wait_for(lambda p: p.files != (), timeout=10)
    assert bulletin.completed and abs(bulletin.started_at - start_at.timestamp()) < 0.2
    assert sum(p.files == () for p in st.sink.playbacks) == 2  # the first tone and the cut one only

    # Relay click: toggled and put back, read back over Modbus by the station.
    switches = len(cabinet.relay_history)
    click = await diagnose(system, st, "relay_click", hold_s=0.3)
    assert click["state"] == "done", click
    r = click["result"]
    assert r["relay_toggled"] != r["relay_before"] and r["relay_after"] == r["relay_before"]
    seen = [on for _ts, on in cabinet.relay_history[switches:]]  # what the relay board did
    assert seen[:2] == [r["relay_toggled"], r["relay_before"]], seen

    # Set volume: the station's volume changes and its telemetry reports it.
    vol = await diagnose(system, st, "set_volume", volume=35)
    assert vol["state"] == "done" and vol["result"]["volume"] == 35, vol
    assert st.running.agent.role.volume.get() == 35
    await eventually(
        lambda: system.api_json("GET", f"/api/v1/devices/{st.device_id}/telemetry?metric=volume&step=raw"),
        lambda t: any(p.get("value") == 35 or p.get("v") == 35 or 35 in (p if isinstance(p, list) else [])
                      for p in t["points"]), timeout=10, what="volume 35 in telemetry",
    )

    # Fetch logs: recent lines, secrets redacted on the station before they leave it.
    logging.getLogger("device_agents.test").warning(
        "retrying login with password=hunter2-very-secret token: abc.def.ghi url mqtt://%s:%s@broker",
        st.uid, st.config.mqtt_password)
    posted = time.monotonic()
    logs = await diagnose(system, st, "fetch_logs", lines=200)
    round_trip_ms = (time.monotonic() - posted) * 1000
    assert logs["state"] == "done", logs
    lines = logs["result"]["lines"]
    assert 0 < len(lines) <= 200 and any("retrying login" in line for line in lines)
    text = json.dumps(logs)
    assert "hunter2" not in text and "abc.def.ghi" not in text
    assert st.config.mqtt_password and st.config.mqtt_password not in text
    print(f"\ntest tone: amplifier {res['amp_current_idle_a']} A idle -> {res['amp_current_a']} A with "
          f"the tone; fetch_logs POST -> result {round_trip_ms:.0f} ms ({len(lines)} lines)")

    # Refused by the controller: not in the enum, or out of bounds (Vietnamese first).
    bad = await system.api("POST", f"/api/v1/devices/{st.device_id}/diagnostics",
                           json={"action": "shell", "params": {"cmd": "rm -rf /"}})
    assert bad.status_code == 422 and "Không có thao tác chẩn đoán" in bad.json()["detail"], bad.text
    loud = await system.api("POST", f"/api/v1/devices/{st.device_id}/diagnostics",
                            json={"action": "test_tone", "params": {"seconds": 3600}},
                            headers={"Accept-Language": "en"})
    assert loud.status_code == 422 and "Invalid parameters" in loud.json()["detail"], loud.text

    # Refused by the station: an action outside the enum even though the real key signed it.
    signer = Signer(KeyPair.load_or_create(system.signing_key_path))
    env = Envelope.new(CommandKind.DIAGNOSTIC, f"dev/{st.uid}",
                       {"action": "shell", "params": {"cmd": "cat /etc/shadow"}}, ttl=timedelta(minutes=1))
    await publish_raw(system, st.uid, SignedMessage.seal(env, signer).to_bytes())
    rej = await rejection(system, st, env.id)
    assert rej["reason"] == "unsupported", rej

    # Refused by the station: a real action signed with a key it does not trust; never executed.
    tones = len(st.sink.playbacks)
    forged = Envelope.new(CommandKind.DIAGNOSTIC, f"dev/{st.uid}",
                          {"action": "test_tone", "params": {"seconds": 1}}, ttl=timedelta(minutes=1))
    await publish_raw(system, st.uid, SignedMessage.seal(forged, Signer(KeyPair.generate())).to_bytes())
    rej = await rejection(system, st, forged.id)
    assert rej["reason"] == "bad_signature", rej
    assert len(st.sink.playbacks) == tones and not st.sink.playing

    # Restart: reported first, then the runner is told to exit with the code systemd restarts on.
    restart = await diagnose(system, st, "restart_agent")
    assert restart["state"] == "done" and restart["result"]["exit_code"] == RESTART_EXIT_CODE
    diag = st.running.agent.diagnostics
    await asyncio.wait_for(diag.restart_requested.wait(), 6)  # after the outbox delivered the result
    assert diag.exit_code == RESTART_EXIT_CODE

    # Who may: technicians within their area; not an operator role, not another commune's technician.
    device = next(d for d in await system.api_json("GET", "/api/v1/devices") if d["id"] == st.device_id)
    other = next(c["id"] for c in system.communes if c["id"] != device["commune_id"])
    db = Database(system.database_url)
    with db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        create_user(s, admin, "ky.thuat.xa.khac", "mat-khau-dai-du", "technician", other)
        create_user(s, admin, "can.bo.xa", "mat-khau-dai-du", "commune", device["commune_id"])
    db.dispose()
    for username, code in (("ky.thuat.xa.khac", "ops.forbidden_area"), ("can.bo.xa", "auth.forbidden")):
        client = await ApiClient.login(system.base_url, username, "mat-khau-dai-du")
        r = await system.api("POST", f"/api/v1/devices/{st.device_id}/diagnostics", auth=False,
                             json={"action": "fetch_logs"},
                             headers={"Authorization": f"Bearer {client.token}"})
        assert r.status_code == 403 and r.json()["code"] == code, (username, r.text)
    trail = await system.api_json("GET", "/api/v1/reports/audit?object_type=device")
    assert {"device.diagnostic.test_tone", "device.diagnostic.restart_agent"} <= {a["action"] for a in trail}

    listed = await system.api_json("GET", f"/api/v1/devices/{st.device_id}/diagnostics")
    assert [d["action"] for d in listed][:1] == ["restart_agent"] and len(listed) == 7


def test_redaction_of_common_secret_shapes() -> None:
    secrets = frozenset({"S3cr3t-Broker-Pass"})
    cases = {
        'config {"mqtt_password": "p4ss", "uid": "spk-1"}': "p4ss",
        "login password=hunter2 ok": "hunter2",
        "Authorization: Bearer eyJhbGciOi.x.y": "eyJhbGciOi",
        "GET https://tech:pa55word@controller/x": "pa55word",
        "enrollment_code=ABCD-EFGH": "ABCD-EFGH",
        "broker refused S3cr3t-Broker-Pass": "S3cr3t-Broker-Pass",
        "api_key: k-123456": "k-123456",
    }
    for line, secret in cases.items():
        out = redact(line, secrets)
        assert secret not in out and "***" in out, (line, out)
    assert redact("played b17 at 05:30, volume 80", secrets) == "played b17 at 05:30, volume 80"



async def test_led_test_pattern_then_the_content_comes_back(tmp_path: Path) -> None:
    """On an LED board (simulated BX-5K controller on a pty): three colour frames, then the real text."""
    hw = SimLedBoard("bx5k", tmp_path / "sim", transport="pty")
    await hw.start()
    key = KeyPair.generate()
    config = AgentConfig(uid="led-diag", kind="led", mqtt_port=1, controller_url="http://127.0.0.1:1",
                         controller_public_keys=[key.public_text], data_dir=tmp_path, led_protocol="bx5k")
    agent = led_station(config, Bx5kController(hw.url, timeout=0.5, retries=0), tick_s=0.1)
    agent.role.content = LedContent(messages=[LedMessage(item_id="l1", text="Lịch tiêm chủng")])
    await agent.start()
    board = hw.board
    try:
        await eventually(_probe(lambda: board.state.text), lambda t: t == "Lich tiem chung", timeout=5,
                         what="the text on the board")
        body = {"action": "led_test_pattern", "params": {"seconds": 1.5}}
        env = Envelope.new(CommandKind.DIAGNOSTIC, "dev/led-diag", body, ttl=timedelta(minutes=1))
        frames = board.state.frames_ok
        agent.diagnostics.accept(env)
        results = await eventually(_probe(lambda: [json.loads(e.payload) for e in agent.store.outbox_head(100)
                                                   if json.loads(e.payload)["kind"] == "diagnostic_result"]),
                                   lambda rs: len(rs) == 1, timeout=10, what="the result event")
        detail = results[0]["detail"]
        assert results[0]["ref"] == env.id and detail["ok"] and detail["frames"] == 3, detail
        assert any("KIEM TRA" in t for t in board.state.history) and board.state.frames_ok >= frames + 3
        await eventually(_probe(lambda: board.state.text), lambda t: t == "Lich tiem chung", timeout=5,
                         what="the content back after the pattern")
        tone = Envelope.new(CommandKind.DIAGNOSTIC, "dev/led-diag", {"action": "test_tone"},
                            ttl=timedelta(minutes=1))
        agent.diagnostics.accept(tone)  # in the enum, but an LED board has no horn: a clear error
        await eventually(_probe(lambda: [json.loads(e.payload) for e in agent.store.outbox_head(100)]),
                         lambda evs: any(e.get("ref") == tone.id and e["reason"] == "not_supported"
                                         for e in evs), timeout=5, what="not_supported")
    finally:
        await agent.stop()
        await hw.close()


def _probe(fn):  # type: ignore[no-untyped-def]
    async def probe():  # type: ignore[no-untyped-def]
        return fn()

    return probe


def test_results_and_rejections_fold_into_commands(database_url: str) -> None:
    """Ingest stores the station's answer on the command row (either database)."""
    db = Database(database_url)
    db.migrate()
    now = datetime.now(UTC)
    with db.session() as s:
        commune = Area(level="commune", name="Xã Hợp Hòa")
        s.add(commune)
        s.flush()
        device = Device(uid="spk-d", name="Cụm loa 1", kind="speaker", commune_id=commune.id, tags=[],
                        reported={})
        s.add(device)
        s.flush()
        for cid, action in (("c" * 32, "relay_click"), ("d" * 32, "test_tone"), ("e" * 32, "fetch_logs")):
            s.add(DiagnosticCommandRow(id=cid, device_id=device.id, action=action, params={},
                                       state="pending", expires_at=now + timedelta(minutes=2)))
        s.add(DiagnosticCommandRow(id="f" * 32, device_id=device.id, action="fetch_logs", params={},
                                   state="pending", expires_at=now - timedelta(seconds=1)))
    ingest = Ingest(db)
    events = [
        Event(id="1" * 32, kind=EventKind.DIAGNOSTIC_RESULT, ts=now, ref="c" * 32,
              detail={"ok": True, "relay_before": False, "relay_toggled": True, "relay_after": False}),
        Event(id="2" * 32, kind=EventKind.DIAGNOSTIC_RESULT, ts=now, ref="d" * 32, reason="busy",
              detail={"ok": False, "error": "busy"}),
        Event(id="3" * 32, kind=EventKind.REJECTED, ts=now, ref="e" * 32, reason="unsupported",
              detail={"message": "nope"}),
        Event(id="4" * 32, kind=EventKind.DIAGNOSTIC_RESULT, ts=now, ref="c" * 32,  # a late duplicate
              detail={"ok": False}),
    ]
    parsed = [ingest.parse(topics.events("spk-d"), e.model_dump_json().encode()) for e in events]
    ingest.store([p for p in parsed if p])
    with db.session() as s:
        rows = {r.id: diagnostics.to_json(r) for r in s.scalars(select(DiagnosticCommandRow))}
    db.dispose()
    assert rows["c" * 32]["state"] == "done" and rows["c" * 32]["result"]["relay_toggled"] is True
    assert rows["d" * 32]["state"] == "error" and rows["d" * 32]["result"]["error"] == "busy"
    assert rows["e" * 32]["state"] == "rejected" and rows["e" * 32]["result"]["error"] == "unsupported"
    assert rows["f" * 32]["state"] == "expired"
