"""A higher priority takes the horn: the item playing (or about to) is reported
interrupted, never played, and the emergency plays whole. Real broker and controller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import CommandKind, MediaRef, PlayCommand, Priority, ScheduleItem
from protocol.signing import KeyPair, Signer
from testkit.api import Api
from testkit.harness import CONTROLLER_USER, System
from testkit.waiting import eventually
from tests.support.audio import tone

# Measures start instants: run alone (scripts/test.sh), not next to other tests.
pytestmark = pytest.mark.solo


@pytest.fixture
def station_system(sqlite_system: System) -> System:
    return sqlite_system


def _command(
    signer: Signer, uid: str, ref: MediaRef, item_id: str, at: datetime, priority: Priority
) -> bytes:
    item = ScheduleItem(item_id=item_id, start_at=at, priority=priority, media=[ref])
    env = Envelope.new(CommandKind.PLAY, f"dev/{uid}", PlayCommand(item=item).model_dump(mode="json"),
                       ttl=timedelta(minutes=1), priority=priority)  # fmt: skip
    return SignedMessage.seal(env, signer).to_bytes()


async def _send_pair(system: System, tmp_path: Path, emergency_after_s: float):  # type: ignore[no-untyped-def]
    (station,) = await system.add_stations(1)
    media = await Api.of(system).upload(tone(tmp_path / "t.wav", seconds=3))
    ref = MediaRef(sha256=media["sha256"], size=media["size"], duration_s=media["duration_s"])
    signer = Signer(KeyPair.load_or_create(system.signing_key_path))
    start = datetime.now(UTC) + timedelta(seconds=3)
    storm_at = start + timedelta(seconds=emergency_after_s)
    async with aiomqtt.Client(
        "127.0.0.1", system.broker.port, username=CONTROLLER_USER, password=system.mqtt_password
    ) as client:
        for item_id, at, prio in (
            ("normal", start, Priority.NORMAL),
            ("storm", storm_at, Priority.EMERGENCY),
        ):
            await client.publish(
                topics.cmd(station.uid), _command(signer, station.uid, ref, item_id, at, prio), qos=1
            )
    return station, storm_at


async def _events(system: System, device_id: int, check, what: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return await eventually(
        lambda: system.api_json("GET", f"/api/v1/devices/{device_id}/events"), check, timeout=15, what=what
    )


async def test_emergency_mid_play_interrupts_the_normal_bulletin(
    station_system: System, tmp_path: Path
) -> None:
    system = station_system
    station, storm_at = await _send_pair(system, tmp_path, 1.0)
    storm = await station.sink.wait_for(lambda p: p.completed, timeout=20)
    assert abs(storm.started_at - storm_at.timestamp()) < 0.15
    events = await _events(
        system, station.device_id,
        lambda evs: {(e.get("item_id"), e["kind"]) for e in evs} >= {("storm", "play_finished"),
                                                                     ("normal", "interrupted")},
        "the normal bulletin reported interrupted and the emergency finished",
    )  # fmt: skip
    kinds = {(e.get("item_id"), e["kind"]) for e in events}
    assert ("normal", "play_finished") not in kinds and ("storm", "play_failed") not in kinds
    interrupted = next(e for e in events if e.get("item_id") == "normal" and e["kind"] == "interrupted")
    assert interrupted["reason"] == "preempted by storm"
    cut = next(p for p in station.sink.playbacks if not p.completed)
    assert cut.finished_at <= storm.started_at + 0.05  # the horn never played both at once


async def test_emergency_at_the_same_instant_goes_first(station_system: System, tmp_path: Path) -> None:
    system = station_system
    station, storm_at = await _send_pair(system, tmp_path, 0.0)
    events = await _events(
        system, station.device_id,
        lambda evs: {(e.get("item_id"), e["kind"]) for e in evs} >= {("storm", "play_finished")}
        and any(e.get("item_id") == "normal" and e["kind"] in ("play_finished", "interrupted", "missed")
                for e in evs),
        "both items reported",
    )  # fmt: skip
    assert not any(e["kind"] == "play_failed" for e in events)
    storm = next(
        p for p in station.sink.playbacks if p.completed and abs(p.started_at - storm_at.timestamp()) < 0.15
    )
    for other in station.sink.playbacks:
        if other is not storm:  # the normal one waits for the horn: it never overlaps the emergency
            assert (
                other.started_at >= storm.finished_at - 0.01 or other.finished_at <= storm.started_at + 0.01
            )
