"""Issue 3 acceptance: a simulated week. Three recurring schedules on 20 stations, a real
controller and a real Mosquitto; the stations' clocks run accelerated (AcceleratedClock),
five of them are cut off from the broker for six virtual hours in the middle. Every
occurrence plays exactly once, none is missed, and every proof of play reaches the
controller.

Tolerances under accelerated time (SPEED virtual seconds per real second): a real
scheduling hiccup of d ms becomes d * SPEED / 1000 virtual seconds, so the agents' real-time
tolerances are scaled up (late start 3 virtual hours = 0.75 s real, decode 3 virtual hours
ahead = 0.75 s real), and items on one station are at least one virtual hour apart so a
late start never makes two of them collide on the horn (05:00, 11:00, 17:00 and the
flood warning at even hours: one virtual hour = 0.25 s real apart).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from communecast.stations import ApiClient, provision
from device_agents.common.clock import AcceleratedClock
from device_agents.hardware.amplifier import NoAmplifier
from device_agents.hardware.audio import PreparedAudio
from device_agents.host.host import StationHost
from device_agents.speaker.role import SpeakerRole, speaker_station
from firmware_sim.audio_sink import SimAudioSink
from protocol.messages import MediaRef
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone
from tests.support.proxy import CuttableProxy

# Measures start instants: run alone (scripts/test.sh), not next to other tests.
pytestmark = pytest.mark.solo

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SPEED = 4 * 3600.0  # four virtual hours per real second: the week takes 42 s
STATIONS, CUT = 20, 5
TOLERANCE_S = 3 * 3600.0  # late-start tolerance in virtual seconds: 0.75 s real


class DecodeOnceSink(SimAudioSink):
    """The simulated speaker, decoding each distinct playlist once.

    460 ffmpeg runs in 42 real seconds would measure the machine, not the schedule: one
    decode costs ~0.1 s real under load = 24 virtual minutes at this speed. Decoding is
    covered by the hardware tests; here every play still goes through prepare() and play().
    """

    _decoded: dict[tuple[Path, ...], PreparedAudio]

    async def prepare(self, files: Sequence[Path]) -> PreparedAudio:
        cache = self.__dict__.setdefault("_decoded", {})
        key = tuple(Path(f) for f in files)
        if key not in cache:
            cache[key] = await super().prepare(files)
        return cache[key]


async def test_a_week_of_schedules_plays_every_occurrence_once(system: System, tmp_path: Path) -> None:
    commune_a, commune_b = system.communes[0]["id"], system.communes[1]["id"]
    # 20 stations: even ones in commune A, odd in B; the first 6 stand by the river.
    for i in range(STATIONS):
        await system.api_json("POST", "/api/v1/devices", json={
            "name": f"Cụm loa {i + 1:02d}", "kind": "speaker",
            "commune_id": commune_a if i % 2 == 0 else commune_b,
            "tags": ["ven-song"] if i < 6 else [],
        })  # fmt: skip
    api = ApiClient(system.base_url, system.token)
    configs = await provision(api, STATIONS, system.root / "stations")
    shas = []
    for n, freq in enumerate((440, 660, 880)):
        with tone(tmp_path / f"t{n}.wav", freq=freq, seconds=1.0).open("rb") as fh:
            r = await system.api("POST", "/api/v1/media", files={"file": (f"t{n}.wav", fh)})
        assert r.status_code == 201, r.text
        shas.append(r.json()["sha256"])

    # The virtual week starts at the next local midnight (minus 5 h) and lasts 7 days.
    now_local = datetime.now(TZ)
    midnight = (now_local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    v0 = midnight - timedelta(hours=5)
    v_end = v0 + timedelta(days=7)
    plans = [
        ("Bản tin sáng và chiều", shas[0], "FREQ=DAILY;BYHOUR=5,17;BYMINUTE=0;BYSECOND=0",
         midnight, None, {"all": True}, "normal"),
        ("Lịch tiêm chủng", shas[1], "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=11;BYMINUTE=0;BYSECOND=0",
         midnight, None, {"communes": [commune_a]}, "normal"),
        ("Cảnh báo lũ", shas[2], "FREQ=HOURLY;INTERVAL=2;BYMINUTE=0;BYSECOND=0",
         midnight + timedelta(days=2), midnight + timedelta(days=4), {"tags": ["ven-song"]}, "priority"),
    ]
    expected: dict[int, dict[str, str]] = {}  # device id -> item id -> media sha
    devices = {d["uid"]: d for d in await system.api_json("GET", "/api/v1/devices")}
    for title, sha, rule, start, until, targets, prio in plans:
        body = {"title": title, "media": [sha], "rrule": rule,
                "dtstart": start.replace(tzinfo=None).isoformat(),
                "targets": targets, "priority": prio}
        if until is not None:
            body["until"] = until.replace(tzinfo=None).isoformat()
        created = await system.api_json("POST", "/api/v1/schedules", json=body)
        assert created["approved"] and created["conflicts"] == []
        instants = await system.api_json("GET", f"/api/v1/schedules/{created['id']}/occurrences",
                                         params={"from": v0.isoformat(), "to": v_end.isoformat()})
        for d in devices.values():
            if (targets.get("all") or d["commune_id"] in targets.get("communes", [])
                    or set(targets.get("tags", [])) & set(d.get("tags") or [])):
                for t in instants:
                    stamp = datetime.fromisoformat(t).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
                    expected.setdefault(d["id"], {})[f"s{created['id']}@{stamp}"] = sha
    total = sum(len(v) for v in expected.values())
    # 05:30 + 17:30 for 7 days; Mon/Wed/Fri in commune A; every 2 h for 2 days (both ends) by the river
    assert total == 20 * 14 + 10 * 3 + 6 * 25, total

    clock = AcceleratedClock(SPEED, start=v0.timestamp(), running=False)
    proxy = CuttableProxy("127.0.0.1", system.broker.port)
    await proxy.start()
    agents: list[tuple[int, StationHost[SpeakerRole], SimAudioSink]] = []
    try:
        for i, cfg in enumerate(configs):
            cfg = cfg.model_copy(update={
                "late_start_tolerance_s": TOLERANCE_S, "prepare_ahead_s": 3 * 3600.0,
                **({"mqtt_port": proxy.port} if i < CUT else {}),
            })  # fmt: skip
            sink = DecodeOnceSink(clock=clock)
            agent = speaker_station(cfg, sink, NoAmplifier(), clock=clock)
            agents.append((devices[cfg.uid]["id"], agent, sink))
        # Fetch and decode the audio before virtual time runs (as on an installer's first boot).
        media = {m["sha256"]: m for m in await system.api_json("GET", "/api/v1/media")}
        for _, agent, sink in agents:
            for sha in shas:
                path = await agent.role.media.ensure(MediaRef(sha256=sha, size=media[sha]["size"],
                                                              duration_s=media[sha]["duration_s"]))
                await sink.prepare([path])
        for _, agent, _ in agents:
            await agent.start()
        # Every station holds its whole week before virtual time starts running.
        await eventually(
            _async(lambda: [{i.item_id for i in a.store.pending_items()} >= set(expected[dev])
                            for dev, a, _ in agents]),
            all,
            timeout=60, what="each station's week in its store",
        )
        clock.run()

        # Day 3, 03:00-09:00 local: the first five stations lose the broker.
        cut_from, cut_to = midnight + timedelta(days=3, hours=3), midnight + timedelta(days=3, hours=9)
        await clock.sleep_until(cut_from.timestamp())
        proxy.cut()
        await clock.sleep_until(cut_to.timestamp())
        cut_ids = {dev for dev, _, _ in agents[:CUT]}
        in_cut = {(dev, item) for dev in cut_ids for item in expected[dev]
                  if cut_from <= _instant(item) < cut_to}
        assert len(in_cut) == CUT * 4  # 05:00, and the flood warning at 04, 06 and 08 h
        played_offline = sum(1 for dev, _, sink in agents[:CUT] for p in sink.playbacks
                             if cut_from.timestamp() <= p.requested_start < cut_to.timestamp())
        assert played_offline == len(in_cut), "cut-off stations kept playing from their stored horizon"
        seen = await system.api_json("GET", "/api/v1/play-log", params={"limit": 10000})
        assert not in_cut & {(r["device_id"], r["item_id"]) for r in seen}, "proof of play came through a cut"
        proxy.restore()

        await clock.sleep_until(v_end.timestamp())
        want = {(dev, item) for dev, items in expected.items() for item in items}
        rows = await eventually(
            lambda: system.api_json("GET", "/api/v1/play-log", params={"limit": 10000}),
            lambda rs: {(r["device_id"], r["item_id"]) for r in rs if r["status"] == "played"} >= want,
            timeout=60, interval=0.5, what="proof of play for every occurrence",
        )
    finally:
        for _, agent, _ in agents:
            await agent.stop()
        await proxy.close()

    # Exactly once at the controller: one row per occurrence of the week, all played.
    # (The horizon reaches past the week; what the stations played after it is not counted.)
    rows = [r for r in rows if _instant(r["item_id"]) < v_end]
    got = Counter((r["device_id"], r["item_id"]) for r in rows)
    assert set(got) == want and max(got.values()) == 1
    assert all(r["status"] == "played" for r in rows)
    # Exactly once at the speakers: each station's playbacks match its occurrences one to one.
    errors_s = []
    for dev, _, sink in agents:
        week = [p for p in sink.playbacks if p.requested_start < v_end.timestamp()]
        assert len(week) == len(expected[dev]), (dev, len(week))
        assert all(p.completed for p in week)
        heard = sorted(p.requested_start for p in week)
        planned = sorted(_instant(i).timestamp() for i in expected[dev])
        errors_s += [h - p for h, p in zip(heard, planned, strict=True)]
    assert max(abs(e) for e in errors_s) < TOLERANCE_S
    print(f"\n{total} plays on {STATIONS} stations over a virtual week at x{SPEED:.0f}; start error "
          f"median {statistics.median(errors_s):.1f} virtual s, max {max(errors_s):.1f} virtual s")


def _instant(item_id: str) -> datetime:
    return datetime.strptime(item_id.split("@")[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)




def _async(fn):  # type: ignore[no-untyped-def]
    async def probe():  # type: ignore[no-untyped-def]
        return fn()

    return probe
