"""Issue 6 acceptance, enrollment: a technician's code gets a fresh Pi online within 10 s;
a used, expired, replaced or guessed code gets a clear error and a non-zero exit.
Real broker (dynamic security), real controller process, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy import create_engine, text

from device_agents.enroll import load
from firmware_sim.bench import start_simulated_station
from protocol.signing import KeyPair, key_fingerprint
from testkit.harness import System
from testkit.waiting import eventually


async def cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "communecast.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def new_station(system: System, name: str = "Cụm loa thôn Đông") -> dict:
    return await system.api_json("POST", "/api/v1/devices", json={
        "name": name, "kind": "speaker", "commune_id": system.communes[0]["id"]})  # fmt: skip


async def new_code(system: System, device_id: int) -> dict:
    r = await system.api("POST", f"/api/v1/devices/{device_id}/enrollment")
    assert r.status_code == 201, r.text
    return r.json()


def fingerprint(system: System) -> str:
    """The controller key's fingerprint, as the code's command / QR carries it (issue 16)."""
    return key_fingerprint(KeyPair.load_or_create(system.signing_key_path).public)


async def is_online(system: System, device_id: int) -> bool:
    devices = await system.api_json("GET", "/api/v1/devices")
    return any(d["id"] == device_id and d["online"] for d in devices)


async def test_fresh_agent_with_a_code_is_online_within_10s_and_the_code_works_once(
    system: System, tmp_path: Path
) -> None:
    device = await new_station(system)
    issued = await new_code(system, device["id"])
    code = issued["code"]
    assert len(code) == 11 and code[5] == "-"  # K7QM2-XW9RT: typed on a phone
    assert datetime.fromisoformat(issued["expires_at"]) - datetime.now(UTC) > timedelta(hours=23)
    qr = await system.api("GET", issued["qr_url"])
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/png"
    assert qr.content.startswith(b"\x89PNG\r\n\x1a\n")

    loop = asyncio.get_running_loop()
    started = loop.time()
    data_dir = tmp_path / "pi"
    # Typed sloppily: lower case, no dash.
    rc, out, err = await cli("agent", "enroll", "--controller", system.base_url,
                             "--code", code.replace("-", "").lower(),
                             "--key-fingerprint", fingerprint(system), "--data-dir", str(data_dir))
    assert rc == 0, err
    assert "Đã kích hoạt trạm" in out and device["uid"] in out
    config_file = data_dir / "config.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    config = load(data_dir)
    assert config.uid == device["uid"] and config.mqtt_username == device["uid"] and config.mqtt_password
    assert config.controller_public_keys and config.groups["commune"] == system.communes[0]["id"]

    station = await start_simulated_station(config)
    try:
        await eventually(lambda: is_online(system, device["id"]), bool, timeout=10, what="station online")
        assert loop.time() - started < 10
        # It converged on its signed desired state (retained, waiting on connect).
        async def applied() -> int:
            return int(station.agent.store.get("desired_version", "0") or 0)

        await eventually(applied, lambda v: v >= 1, timeout=10, what="desired state applied")
    finally:
        await station.stop()

    rc, out, err = await cli("agent", "enroll", "--controller", system.base_url, "--code", code,
                             "--key-fingerprint", fingerprint(system), "--data-dir", str(tmp_path / "again"))
    assert rc != 0
    assert "đã được dùng" in err and "Mỗi mã chỉ dùng một lần" in err
    assert not (tmp_path / "again" / "config.json").exists()


def _expire_codes(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE enrollment_codes SET expires_at = :t"),
                     {"t": datetime.now(UTC) - timedelta(minutes=1)})
    engine.dispose()


async def test_expired_replaced_and_retired_codes_are_refused_clearly(
    system: System, database_url: str, tmp_path: Path
) -> None:
    device = await new_station(system)
    old = (await new_code(system, device["id"]))["code"]
    newer = (await new_code(system, device["id"]))["code"]
    rc, _, err = await cli("agent", "enroll", "--controller", system.base_url, "--code", old,
                           "--key-fingerprint", fingerprint(system), "--data-dir", str(tmp_path / "a"))
    assert rc != 0 and "đã bị thay bằng mã mới hơn" in err

    _expire_codes(database_url)
    rc, _, err = await cli("agent", "enroll", "--controller", system.base_url, "--code", newer,
                           "--key-fingerprint", fingerprint(system), "--data-dir", str(tmp_path / "a"),
                           "--lang", "en")
    assert rc != 0 and "This enrollment code expired at" in err
    assert not (tmp_path / "a" / "config.json").exists()
    r = await system.api("POST", "/api/v1/enroll", auth=False, json={"code": newer})
    assert r.status_code == 410 and "Mã kích hoạt đã hết hạn lúc" in r.json()["detail"]

    fresh = (await new_code(system, device["id"]))["code"]
    assert (await system.api("POST", f"/api/v1/devices/{device['id']}/retire")).status_code == 200
    r = await system.api("POST", "/api/v1/enroll", auth=False, json={"code": fresh})
    assert r.status_code == 410 and r.json()["code"] == "enroll.code_revoked"
    r = await system.api("POST", f"/api/v1/devices/{device['id']}/enrollment")
    assert r.status_code == 409 and "ngừng sử dụng" in r.json()["detail"]


async def test_guessing_codes_is_stopped_and_reenroll_replaces_credentials(
    database_url: str, tmp_path: Path
) -> None:
    system = System(tmp_path / "sys", database_url,
                    controller_env={"COMMUNECAST_ENROLLMENT_MAX_FAILURES": "3"})
    await system.start()
    try:
        device = await new_station(system)
        first = (await new_code(system, device["id"]))["code"]
        r = await system.api("POST", "/api/v1/enroll", auth=False, json={"code": first})
        assert r.status_code == 200
        old_password = r.json()["agent_config"]["mqtt_password"]

        # The same station re-enrolled (a replaced Pi): the old password stops working.
        second = (await new_code(system, device["id"]))["code"]
        r = await system.api("POST", "/api/v1/enroll", auth=False, json={"code": second})
        assert r.status_code == 200
        new_password = r.json()["agent_config"]["mqtt_password"]
        assert new_password != old_password
        port, uid = system.broker.port, device["uid"]  # the account's own client id (issue 16)
        with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
            async with aiomqtt.Client("127.0.0.1", port, identifier=uid, username=uid, password=old_password):
                pass
        async with aiomqtt.Client("127.0.0.1", port, identifier=uid, username=uid, password=new_password):
            pass

        third = (await new_code(system, device["id"]))["code"]
        for guess in ("AAAAA-AAAAA", "BBBBB-BBBBB", "not a code"):
            r = await system.api("POST", "/api/v1/enroll", auth=False, json={"code": guess})
            assert r.status_code in (400, 404)
        # Even the right code waits now: the address is locked out for the window.
        r = await system.api("POST", "/api/v1/enroll", auth=False, json={"code": third},
                             headers={"Accept-Language": "en"})
        assert r.status_code == 429 and "Too many wrong codes" in r.json()["detail"]
    finally:
        await system.stop()


async def test_csv_import_creates_stations_with_codes_or_nothing(system: System) -> None:
    commune = system.communes[0]["id"]
    bad = ("name,kind,commune_id,lat,lon,tags\n"
           f"Cụm loa chợ,speaker,{commune},21.3,105.5,chợ;trung tâm\n"
           f"Bảng điện tử UBND,led,{commune},,,\n"
           "Cụm loa lạc,speaker,999999,,,\n"
           f"Cụm loa sai loại,radio,{commune},,,\n")  # fmt: skip
    r = await system.api("POST", "/api/v1/devices/import", files={"file": ("tram.csv", bad.encode())})
    assert r.status_code == 422 and "chưa nhập trạm nào" in r.json()["detail"]
    assert sorted(e["line"] for e in r.json()["errors"]) == [4, 5]
    assert await system.api_json("GET", "/api/v1/devices") == []

    good = "\n".join(bad.splitlines()[:3]) + "\n"
    r = await system.api("POST", "/api/v1/devices/import", files={"file": ("tram.csv", good.encode())})
    assert r.status_code == 201, r.text
    created = r.json()["created"]
    assert [c["name"] for c in created] == ["Cụm loa chợ", "Bảng điện tử UBND"]
    assert created[0]["tags"] == ["chợ", "trung tâm"] and created[1]["kind"] == "led"
    code = created[0]["enrollment"]["code"]
    r = await system.api("POST", "/api/v1/enroll", auth=False, json={"code": code})
    assert r.status_code == 200 and r.json()["agent_config"]["uid"] == created[0]["uid"]
