"""Issue 8: the fleet simulator runs many real agents in one process.

Each fleet station has its own broker account (issued through the REST API), its own
MQTT connection and store, and in-process hardware (sink + amplifier cabinet model).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware_sim.fleet import Fleet, provision_fleet
from testkit.api import Api
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone

# Measures start instants across the fleet: run alone (scripts/test.sh), not next to other tests.
pytestmark = pytest.mark.solo


async def test_fleet_stations_play_a_bulletin_together_with_their_own_credentials(tmp_path: Path) -> None:
    system = System(tmp_path / "system", f"sqlite:///{tmp_path / 'controller.db'}")
    fleet: Fleet | None = None
    try:
        await system.start()
        configs = await provision_fleet(system.base_url, system.token, 6, tmp_path / "fleet")
        assert len({c.mqtt_username for _, c in configs}) == 6  # one broker account each
        assert len({c.mqtt_password for _, c in configs}) == 6
        fleet = Fleet(configs, wave=4)
        await fleet.start(connect_timeout=30)
        assert fleet.connected() == 6
        await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                         lambda ds: sum(d["online"] for d in ds) == 6, timeout=15, what="6 online")

        media = await Api.of(system).upload(tone(tmp_path / "t.wav", seconds=1.0))
        start_at = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
        bc = await system.api_json("POST", "/api/v1/broadcasts", json={
            "title": "Thông báo lịch tiêm chủng", "media_sha256": media["sha256"],
            "targets": {"all": True}, "start_at": start_at.isoformat()})  # fmt: skip
        for st in fleet.stations:
            played = await st.sink.wait_for(lambda p: True, timeout=20)
            assert abs(played.started_at - start_at.timestamp()) < 0.1
            assert played.completed
            # The amplifier was switched on for it through the in-process cabinet model.
            assert any(on for _, on in st.cabinet.relay_history)
        rows = await eventually(
            lambda: system.api_json("GET", f"/api/v1/play-log?broadcast_id={bc['id']}"),
            lambda rows: len(rows) == 6 and all(r["status"] == "played" for r in rows),
            timeout=20, what="6 proofs of play")
        assert {r["device_id"] for r in rows} == {st.device_id for st in fleet.stations}
    finally:
        if fleet is not None:
            await fleet.stop()
        await system.stop()
