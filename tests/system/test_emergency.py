"""Emergency broadcasts on SQLite and PostgreSQL: one publish per group topic, repeat rule as an
emergency schedule in the stations' horizon, cancel everywhere, per-station states, the 422 for
a non-emergency with a repeat (docs/emergency.md)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt

from testkit.api import Api
from testkit.harness import CONTROLLER_USER, System
from testkit.waiting import eventually
from tests.support.audio import tone

REPEAT = "FREQ=HOURLY;INTERVAL=2;BYMINUTE=0;BYSECOND=0"


class TopicCounter:
    """A real MQTT subscriber on cc/v1/#: counts controller commands per topic."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.ready = asyncio.Event()

    def commands(self) -> dict[str, int]:
        return {t: n for t, n in self.counts.items() if t.endswith("/cmd")}

    async def run(self, system: System) -> None:
        async with aiomqtt.Client("127.0.0.1", system.broker.port, username=CONTROLLER_USER,
                                  password=system.mqtt_password,
                                  identifier=f"test-counter-{secrets.token_hex(4)}") as client:
            await client.subscribe("cc/v1/#", qos=1)
            self.ready.set()
            async for msg in client.messages:
                self.counts[msg.topic.value] = self.counts.get(msg.topic.value, 0) + 1


@contextlib.asynccontextmanager
async def counting(system: System) -> AsyncIterator[TopicCounter]:
    counter = TopicCounter()
    task = asyncio.create_task(counter.run(system))
    try:
        async with asyncio.timeout(10):
            await counter.ready.wait()
        yield counter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def test_emergency_repeat_cancel_and_one_publish_per_group(system: System, tmp_path: Path) -> None:
    stations = await system.add_stations(5)  # round-robin over the two communes
    c1 = system.communes[0]["id"]
    in_c1 = [st for st in stations if st.running.agent.cfg.groups.get("commune") == c1]
    others = [st for st in stations if st not in in_c1]
    assert len(in_c1) == 3 and len(others) == 2
    await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                     lambda ds: sum(d["online"] for d in ds) == 5, timeout=30, what="stations online")
    away = in_c1.pop()  # this one is switched off before the emergency: shown "offline"
    await away.running.stop()
    stations.remove(away)
    await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                     lambda ds: sum(d["online"] for d in ds) == 4, timeout=30, what="one station offline")
    media = await Api.of(system).upload(tone(tmp_path / "siren.wav", freq=880, seconds=2.0))

    # A normal bulletin may not carry a repeat rule: a clear 422, in Vietnamese.
    r = await system.api("POST", "/api/v1/broadcasts", json={
        "title": "Bản tin thường", "media_sha256": media["sha256"], "targets": {"all": True},
        "priority": "normal", "repeat": REPEAT})  # fmt: skip
    assert r.status_code == 422, r.text
    assert "khẩn cấp" in r.json()["detail"] and "repeat" in r.json()["detail"]

    async with counting(system) as counter:
        r = await system.api("POST", "/api/v1/broadcasts", json={
            "title": "Cảnh báo lũ quét khẩn cấp", "media_sha256": media["sha256"],
            "targets": {"communes": [c1]}, "priority": "emergency", "repeat": REPEAT})  # fmt: skip
        assert r.status_code == 201, r.text
        bc = r.json()
        group = f"cc/v1/grp/commune/{c1}/cmd"
        assert bc["stations"] == 3 and bc["emergency"]["topics"] == [group]
        sid = bc["emergency"]["schedule_id"]
        assert sid is not None

        # Exactly one signed PLAY on the commune's group topic; nothing per station.
        for st in in_c1:
            p = await st.sink.wait_for(lambda p: True, timeout=20)
            assert p.volume == 100 and p.completed
        assert counter.commands() == {group: 1}, counter.counts
        assert all(not st.sink.playbacks for st in others)  # the other commune stays silent

        # The repeat is an active emergency schedule; its next occurrences sit in the stations'
        # own stores (desired-state horizon) at emergency volume, so they play through outages.
        sc = await system.api_json("GET", f"/api/v1/schedules/{sid}")
        assert sc["priority"] == "emergency" and sc["status"] == "active" and sc["rrule"] == REPEAT

        def repeats(st: object) -> list:
            return [i for i in st.running.agent.store.pending_items()  # type: ignore[attr-defined]
                    if i.item_id.startswith(f"s{sid}@")]

        await eventually(lambda: _aw([len(repeats(st)) for st in stations]),
                         lambda n: all(n[stations.index(s)] >= 4 for s in in_c1),
                         timeout=20, what="repeat occurrences in the horizon")
        assert all(i.volume == 100 and i.priority == "emergency" for st in in_c1 for i in repeats(st))
        assert all(not repeats(st) for st in others)
        starts = sorted(i.start_at for i in repeats(in_c1[0]))  # every 2 hours, on the hour
        assert all(t.minute == 0 and t.second == 0 for t in starts)
        assert {(b - a).total_seconds() for a, b in itertools.pairwise(starts)} == {7200.0}

        detail = await eventually(lambda: system.api_json("GET", f"/api/v1/broadcasts/{bc['id']}"),
                                  lambda b: b["counts"].get("played") == 2, timeout=20, what="played")
        states = {s["device_id"]: s for s in detail["station_states"]}
        assert states.pop(away.device_id)["state"] == "offline"
        assert {s["state"] for s in states.values()} == {"played"}
        assert all(s["acked_at"] for s in states.values())
        assert detail["emergency"]["sent_by"] == "admin" and detail["skew"]["stations"] == 2

        before = dict(counter.commands())
        r = await system.api("POST", f"/api/v1/broadcasts/{bc['id']}/cancel")
        assert r.status_code == 200, r.text
        await eventually(lambda: _aw(counter.commands()), lambda c: c.get(group, 0) == before[group] + 1,
                         timeout=10, what="one CANCEL on the group topic")
        # Future plays are gone from every station; the schedule is ended; cancel is idempotent.
        await eventually(lambda: _aw([len(repeats(st)) for st in in_c1]), lambda n: n == [0, 0],
                         timeout=20, what="repeats dropped")
        assert (await system.api_json("GET", f"/api/v1/schedules/{sid}"))["status"] == "deleted"
        r = await system.api("POST", f"/api/v1/broadcasts/{bc['id']}/cancel")
        assert r.status_code == 200
        final = await system.api_json("GET", f"/api/v1/broadcasts/{bc['id']}")
        assert final["status"] == "cancelled" and final["emergency"]["status"] == "cancelled"
        assert [c for t, c in counter.commands().items() if "/dev/" in t] == []

        # Text only, to one station: read out by TTS, sent on that station's own command topic.
        one = others[0]
        r = await system.api("POST", "/api/v1/broadcasts", json={
            "title": "Cháy rừng", "text": "Khẩn cấp: cháy rừng ở thôn Đồng Bùa", "priority": "emergency",
            "targets": {"devices": [one.device_id]}})  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.json()["emergency"]["topics"] == [f"cc/v1/dev/{one.uid}/cmd"]
        p = await one.sink.wait_for(lambda p: p.volume == 100, timeout=30)
        assert p.duration_s > 1.0


async def _aw(value: object) -> object:
    return value
