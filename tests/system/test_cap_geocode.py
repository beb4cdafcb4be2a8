"""Issue 19 item 4 (docs/areas.md, docs/cap.md): a CAP alert naming a commune by its official
code, `<geocode><valueName>DVHC</valueName><value>8869</value></geocode>`, airs on the stations of
Xã Tam Dương only (not on Xã Tam Dương Bắc, 8872, in the same group of communes), with the real
broker and simulated stations; the alias `MA_XA` names a commune the same way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from testkit.harness import System
from testkit.waiting import eventually

CAP = {"Content-Type": "application/cap+xml"}
COMMUNES = [
    {"name": "Xã Tam Dương", "code": "8869", "kind": "xa",
     "former_names": ["Thị trấn Hợp Hòa (Huyện Tam Dương, Tỉnh Vĩnh Phúc)"]},
    {"name": "Xã Tam Dương Bắc", "code": "8872", "kind": "xa"},
]  # fmt: skip


def alert(identifier: str, value_name: str, value: str) -> bytes:
    now = datetime.now(UTC)
    sent = now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    expires = (now + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>canhbao@kttv.gov.vn</sender><sent>{sent}</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info>
    <language>vi-VN</language><category>Met</category><event>Lũ quét</event>
    <urgency>Immediate</urgency><severity>Extreme</severity><certainty>Observed</certainty>
    <expires>{expires}</expires>
    <headline>Cảnh báo lũ quét</headline><instruction>Người dân ven suối di chuyển lên vùng cao.</instruction>
    <area><areaDesc>Khu vực ven suối</areaDesc>
      <geocode><valueName>{value_name}</valueName><value>{value}</value></geocode></area>
  </info>
</alert>""".encode()


@pytest.fixture
async def system(tmp_path: Path, database_url: str) -> AsyncIterator[System]:
    sys_ = System(tmp_path / "system", database_url, commune_specs=COMMUNES)
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()


async def test_dvhc_geocode_airs_on_that_commune_only(system: System) -> None:
    near, far = await system.add_stations(2)  # round-robin: Xã Tam Dương, Xã Tam Dương Bắc
    assert [c["code"] for c in system.communes] == ["8869", "8872"]
    assert system.group is not None
    assert system.group["commune_ids"] == sorted(c["id"] for c in system.communes)
    assert near.running.agent.cfg.groups.get("commune") == system.communes[0]["id"]
    await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                     lambda ds: sum(d["online"] for d in ds) == 2, timeout=30, what="stations online")
    r = await system.api("POST", "/api/v1/cap", content=alert("VN-DVHC-1", "DVHC", "8869"), headers=CAP)
    assert r.status_code == 201, r.text
    aired = r.json()
    assert aired["outcome"] == "aired" and aired["broadcast_id"], aired
    await eventually(lambda: asyncio.sleep(0, near.sink), lambda s: s.playing, timeout=15,
                     what="alert on air in Xã Tam Dương", interval=0.01)
    bc = await eventually(lambda: system.api_json("GET", f"/api/v1/broadcasts/{aired['broadcast_id']}"),
                          lambda b: b.get("stations"), timeout=15, what="delivery rows")
    assert bc["targets"] == {"communes": [system.communes[0]["id"]]}
    assert {s["device_id"] for s in bc["stations"]} == {near.device_id}, bc["stations"]
    # MA_XA (an alias) with the zero-padded code: the same commune.
    r = await system.api("POST", "/api/v1/cap", content=alert("VN-DVHC-2", "MA_XA", "08869"), headers=CAP)
    assert r.status_code == 201 and r.json()["outcome"] == "aired", r.text
    await asyncio.sleep(2)
    assert far.sink.playbacks == [] and not far.sink.playing  # Xã Tam Dương Bắc stayed silent
