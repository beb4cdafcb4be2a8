"""Issue 18: a broadcast accepted while the broker is frozen plays late, and the operator is
told how late and why, station by station (controller/services/lateness.py), in the API and
on the panel's play-log page; a broadcast on time next to it is reported as nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from testkit.api import Api
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone
from tests.support.served_panel import panel_login


async def test_a_broadcast_sent_into_a_frozen_broker_reports_its_lateness_per_station(
    system: System, api: Api, tmp_path: Path
) -> None:
    await system.add_stations(2)
    media = await api.upload(tone(tmp_path / "t.wav", seconds=1))

    async def health() -> int:
        return (await system.api("GET", "/healthz", auth=False)).status_code

    await eventually(health, lambda c: c == 200, timeout=15, what="healthy first")
    on_time = await api.send(media, datetime.now(UTC) + timedelta(seconds=3), {"all": True}, title="Đúng giờ")
    await api.wait_for_acks(on_time["id"], 2, timeout=10)
    system.broker.freeze()
    try:
        await eventually(health, lambda c: c == 503, timeout=8, what="the freeze noticed")
        start = datetime.now(UTC) + timedelta(seconds=1)
        late = await api.send(media, start, {"all": True}, title="Gửi khi máy chủ MQTT treo")
        assert late["warnings"]
        # Stay frozen well past the start: the stations cannot hear of it meanwhile.
        await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 3)
    finally:
        system.broker.thaw()

    plays = await eventually(lambda: api.play_log(late["id"]),
                             lambda rows: len(rows) == 2 and all(r["status"] == "played" for r in rows),
                             timeout=30, what="both stations played the late broadcast")  # fmt: skip
    assert all(r["start_error_ms"] > 3000 for r in plays), plays
    detail = await api.broadcast(late["id"])
    for st in detail["station_states"]:
        lateness = st["lateness"]
        assert lateness is not None, st
        assert lateness["cause"] == "broker_unreachable", st
        assert lateness["late_ms"] > 3000 and lateness["outage_from"] and lateness["outage_to"], st
        outage_from, outage_to = (datetime.fromisoformat(lateness[k]) for k in ("outage_from", "outage_to"))
        assert outage_from < start < outage_to

    await eventually(lambda: api.play_log(on_time["id"]), lambda rows: len(rows) == 2, timeout=15,
                     what="the on-time broadcast played")  # fmt: skip
    assert all(st["lateness"] is None for st in (await api.broadcast(on_time["id"]))["station_states"])

    async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as http:
        await panel_login(http, "admin", system.admin_password)
        page = (await http.get(f"/playlog?broadcast_id={late['id']}")).text
        assert 'id="late-stations"' in page
        assert page.count("Máy chủ MQTT không trả lời từ") == 2 and "Phát trễ" in page
        calm = (await http.get(f"/playlog?broadcast_id={on_time['id']}")).text
        assert 'id="late-stations"' not in calm
