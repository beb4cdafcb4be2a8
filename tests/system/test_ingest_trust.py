"""Issue 16, what a station may make the controller store (docs/security.md): proof of play
only for items delivered to that station, no packet over protocol/limits.py's
MAX_PACKET_SIZE (the broker drops the sender), and an event's free text cut to its limits.
A real station account publishes over the real broker; the controller runs on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from protocol import topics
from protocol.limits import EVENT_DETAIL_MAX_BYTES, EVENT_REASON_MAX_CHARS, MAX_PACKET_SIZE, TRUNCATED_MARK
from protocol.messages import Event, EventKind
from testkit.api import Api
from testkit.harness import Station, System
from testkit.waiting import eventually
from tests.support.audio import tone

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


async def as_station(station: Station) -> aiomqtt.Client:
    """The station's own account and client id (its agent stopped first): what a tampered
    station could send."""
    await station.running.stop()
    c = station.config
    return aiomqtt.Client(
        "127.0.0.1", c.mqtt_port, identifier=c.uid, username=c.mqtt_username, password=c.mqtt_password
    )


def event(event_id: str, kind: EventKind, item: str | None = None, **fields: object) -> bytes:
    return (
        Event(id=event_id, kind=kind, ts=datetime.now(UTC), item_id=item, **fields).model_dump_json().encode()
    )  # type: ignore[arg-type]


async def refused_total(system: System) -> float:
    text = (await system.api("GET", "/metrics", auth=False)).text
    m = re.search(r"^communecast_play_events_refused_total (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def test_proof_of_play_is_taken_only_for_items_delivered_to_that_station(
    system: System, tmp_path: Path
) -> None:
    a, b = await system.add_stations(2)
    sha = (await Api.of(system).upload(tone(tmp_path / "t.wav", seconds=1.0)))["sha256"]
    start = (datetime.now(TZ) + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)

    async def daily_for(station: Station) -> tuple[int, str]:
        sc = await system.api_json(
            "POST",
            "/api/v1/schedules",
            json={
                "title": f"Bản tin {station.uid}",
                "media": [sha],
                "rrule": "FREQ=DAILY",
                "dtstart": start.replace(tzinfo=None).isoformat(),
                "targets": {"devices": [station.device_id]},
            },
        )
        return sc["id"], f"s{sc['id']}@{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"

    mine_id, mine = await daily_for(a)
    _, theirs = await daily_for(b)
    invented = (
        "b999999",  # no such broadcast
        f"s{mine_id}@{start.astimezone(UTC):%Y%m%dT%H%M}23Z",  # its own schedule, not an occurrence
    )
    before = await refused_total(system)
    async with await as_station(a) as probe:
        for n, item in enumerate((theirs, *invented)):
            await probe.publish(
                topics.events(a.uid), event(f"evt-forged-{n}", EventKind.PLAY_FINISHED, item), qos=1
            )
        await probe.publish(
            topics.events(a.uid), event("evt-true-0001", EventKind.PLAY_FINISHED, mine), qos=1
        )

    rows = await eventually(
        lambda: system.api_json("GET", "/api/v1/play-log", params={"device_id": a.device_id}),
        lambda rs: any(r["item_id"] == mine for r in rs),
        timeout=15,
        what="its own proof of play",
    )
    assert [(r["item_id"], r["status"]) for r in rows] == [(mine, "played")]
    assert await system.api_json("GET", "/api/v1/play-log", params={"device_id": b.device_id}) == []
    # Published before the true one by the same client: refused by the time it is stored.
    assert await refused_total(system) == before + 3
    # What the station said stays in its event log (for whoever investigates), not as proof.
    events = await system.api_json("GET", f"/api/v1/devices/{a.device_id}/events")
    assert len([e for e in events if e["id"].startswith("evt-forged-")]) == 3


async def test_broker_drops_an_oversized_packet_and_ingest_cuts_long_text(system: System) -> None:
    (a,) = await system.add_stations(1)
    huge = event("evt-huge-0001", EventKind.FAULT, reason="x", detail={"blob": "A" * (2 * MAX_PACKET_SIZE)})
    probe = await as_station(a)
    with pytest.raises(aiomqtt.MqttError):  # the broker disconnects the sender
        async with probe:
            await probe.publish(topics.events(a.uid), huge, qos=1, timeout=10)
            await probe.publish(
                topics.events(a.uid), event("evt-after-0001", EventKind.FAULT), qos=1, timeout=10
            )

    long_reason = "=" + "Ù" * (3 * EVENT_REASON_MAX_CHARS)
    big_detail = {"code": 7, "note": "B" * (EVENT_DETAIL_MAX_BYTES + 100_000)}  # still under the packet limit
    async with await as_station(a) as probe:
        payload = event("evt-long-0001", EventKind.FAULT, reason=long_reason, detail=big_detail)
        assert len(payload) < MAX_PACKET_SIZE
        await probe.publish(topics.events(a.uid), payload, qos=1)

    events = await eventually(
        lambda: system.api_json("GET", f"/api/v1/devices/{a.device_id}/events"),
        lambda es: any(e["id"] == "evt-long-0001" for e in es),
        timeout=15,
        what="the long event stored",
    )
    assert not [e for e in events if e["id"] in ("evt-huge-0001", "evt-after-0001")]
    (stored,) = [e for e in events if e["id"] == "evt-long-0001"]
    assert len(stored["reason"]) == EVENT_REASON_MAX_CHARS and stored["reason"].endswith(TRUNCATED_MARK)
    assert stored["detail"]["code"] == 7 and stored["detail"]["truncated"] == TRUNCATED_MARK
    assert len(stored["detail"]["note"]) < 300


def test_every_broker_config_the_project_ships_or_generates_limits_packets(tmp_path: Path) -> None:
    """One value (protocol/limits.py) in the generated config and the deploy/ ones."""
    from communecast.mosquitto import PrivateMosquitto

    root = Path(__file__).resolve().parents[2]
    broker = PrivateMosquitto(tmp_path, port=1, controller_user="c", controller_password="p", dynsec=False)
    for conf in (broker.write_config(), root / "deploy/mosquitto/mosquitto.conf",
                 root / "deploy/mosquitto/mosquitto-files.conf"):  # fmt: skip
        lines = [line.split() for line in conf.read_text().splitlines() if line.startswith("max_packet_size")]
        assert lines == [["max_packet_size", str(MAX_PACKET_SIZE)]], conf
    assert MAX_PACKET_SIZE == 1024 * 1024  # EMQX says it as 1MB
    assert "max_packet_size = 1MB" in (root / "deploy/emqx/emqx.conf").read_text()
