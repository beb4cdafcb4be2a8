"""What `communecast bench chaos` (testkit/chaos.py) found, each as the smallest test that shows it.

1. Fixed: an emergency published while a station was reconnecting after a broker crash never
   reached it (a group PLAY is not retained, and the crashed broker had lost the station's
   session) and the controller showed the station `pending` for good. Now a station that comes
   back with an unacknowledged delivery gets its desired state, which carries the broadcast,
   again (services/ingest.py `_unacknowledged`).
2. Fixed: proof of play was acknowledged hop by hop. A station deleted an event from its outbox
   at the broker's PUBACK, and the controller PUBACKs a message before its ingest has stored it
   ("messages wait (acknowledged, in memory)", services/ingest.py). So a broker kill -9 lost
   what it held for the controller (its session, when never saved, and its queue), and a
   controller kill -9 lost the batch it had acknowledged but not committed: the speaker
   sounded, the controller never learnt it. Now the station keeps each event until the
   controller's receipt names it, and sends again what no receipt named in time
   (device_agents/common/link.py, controller/mqtt/receipts.py).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from testkit.api import Api
from testkit.harness import Station, System
from testkit.proxy import CuttableProxy
from testkit.waiting import eventually
from tests.support.audio import tone

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# Short waits for a receipt, so the tests see the stations send again within their deadlines.
QUICK_RESEND = {"receipt_wait_s": 2.0, "receipt_wait_cap_s": 4.0}


async def _broker_acknowledged(st: Station, count: int) -> None:
    """The broker PUBACKed `count` events that no receipt has named: before the end-to-end
    receipt, the station forgot them right here."""
    await eventually(lambda: _ready(st.running.agent.link.awaiting_receipt), lambda n: n >= count,
                     timeout=20, what=f"{count} events acknowledged by the broker, not yet receipted")


async def _ready(value: int) -> int:
    return value


async def _holds_audio(st: Station, sha256: str) -> None:
    """The station fetches the audio after it acknowledges; a controller killed before that leaves
    it nothing to play (a failed play, reported: not what these tests are about)."""
    path = st.config.data_dir / "media" / f"{sha256}.media"
    await eventually(lambda: _ready(path.exists()), bool, timeout=30, what="the audio in the station's cache")


async def _played(st: Station, count: int) -> None:
    await st.sink.wait_for(lambda p: p.completed, timeout=30, start_index=count - 1)


async def test_an_emergency_sent_while_a_station_reconnects_after_a_broker_crash_still_reaches_it(
    system: System, api: Api, tmp_path: Path
) -> None:
    proxy = CuttableProxy("127.0.0.1", system.broker.port)
    await proxy.start()
    try:
        (st,) = await system.add_stations(1, mqtt_port=proxy.port)
        await asyncio.wait_for(st.running.agent.link.connected.wait(), 20)
        media = await api.upload(tone(tmp_path / "khan.wav", freq=500, seconds=1.0))
        # The broker crashes (its memory, with the station's session, is gone); the station is
        # still on its way back when the operator sends the emergency.
        proxy.cut()
        system.broker.kill()
        system.broker.start()
        await system.controller.wait_healthy()
        await eventually(lambda: _health(system), lambda code: code == 200, timeout=30, what="broker proven")
        start = datetime.now(UTC) + timedelta(seconds=8)
        bc = await api.json("POST", "/api/v1/broadcasts", json={
            "title": "Khẩn cấp: lũ quét", "priority": "emergency", "media_sha256": media["sha256"],
            "targets": {"all": True}, "start_at": start.isoformat()})  # fmt: skip
        await asyncio.sleep(1.0)
        proxy.restore()
        await st.sink.wait_for(lambda p: p.completed, timeout=30)
        rows = await eventually(lambda: api.play_log(bc["id"]),
                                lambda rs: bool(rs) and rs[0]["status"] == "played",
                                timeout=20, what="proof of the emergency")
        assert rows[0]["device_id"] == st.device_id
    finally:
        await proxy.close()


async def _health(system: System) -> int:
    r = await system.api("GET", "/healthz", auth=False)
    return r.status_code


async def test_proof_of_play_survives_a_broker_crash_while_the_controller_is_away(
    system: System, api: Api, tmp_path: Path
) -> None:
    system.agent_overrides.update(QUICK_RESEND)
    (st,) = await system.add_stations(1)
    media = await api.upload(tone(tmp_path / "b.wav", freq=440, seconds=1.0))
    bc = await api.send(media, datetime.now(UTC) + timedelta(seconds=8), {"devices": [st.device_id]})
    await api.wait_for_acks(bc["id"], 1)
    await _holds_audio(st, media["sha256"])
    system.controller.stop(signal.SIGKILL)  # away (crashed, or still reconnecting) ...
    system.broker.kill()  # ... when the broker crashes: its memory had the controller's session
    system.broker.start()
    await _played(st, 1)
    await _broker_acknowledged(st, 2)  # play_started / play_finished, held for a session the broker lost
    assert st.running.agent.store.outbox_size() >= 2
    system.controller.start()
    await system.controller.wait_healthy()
    await eventually(lambda: api.play_log(bc["id"]), lambda rs: bool(rs) and rs[0]["status"] == "played",
                     timeout=30, what="proof of play after the broker crash")
    await eventually(lambda: _ready(st.running.agent.store.outbox_size()), lambda n: n == 0,
                     timeout=20, what="the station's outbox emptied by the receipt")


async def test_proof_of_play_survives_a_controller_kill_before_its_batch_is_stored(
    system: System, api: Api, tmp_path: Path
) -> None:
    system.agent_overrides.update(QUICK_RESEND)
    (st,) = await system.add_stations(1)
    media = await api.upload(tone(tmp_path / "b.wav", freq=440, seconds=1.0))
    bc = await api.send(media, datetime.now(UTC) + timedelta(seconds=6), {"devices": [st.device_id]})
    await api.wait_for_acks(bc["id"], 1)
    await _holds_audio(st, media["sha256"])
    db_file = system.database_url.removeprefix("sqlite:///")
    # Hold the database for a moment (a slow disk, a long report query): ingest's write waits,
    # the messages it was handed wait in memory, already acknowledged to the broker.
    hold = sqlite3.connect(db_file, timeout=30, isolation_level=None)
    hold.execute("BEGIN EXCLUSIVE")
    try:
        await _played(st, 1)
        await _broker_acknowledged(st, 2)
        await asyncio.sleep(1.0)  # the broker delivered them to the controller and got its PUBACK
        system.controller.stop(signal.SIGKILL)
    finally:
        hold.execute("ROLLBACK")
        hold.close()
    system.controller.start()
    await system.controller.wait_healthy()
    await eventually(lambda: api.play_log(bc["id"]), lambda rs: bool(rs) and rs[0]["status"] == "played",
                     timeout=15, what="proof of play after the controller kill")
