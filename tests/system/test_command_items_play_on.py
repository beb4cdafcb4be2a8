"""An item that came as a command (an emergency's PLAY) is ended only by a CANCEL: a desired
state that does not list it, built before the command or by a controller that lost track of
it, neither drops it while pending nor stops it on air (device_agents/common/store.py
`from_commands`). Before, the agent stopped anything on air its newest desired state lacked:
an emergency cut off 0.25 s before its start (issue 21's CI) was one such desired state."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import (
    CancelCommand,
    CommandKind,
    DesiredState,
    MediaRef,
    PlayCommand,
    Priority,
    ScheduleItem,
)
from protocol.signing import KeyPair, Signer
from testkit.api import Api
from testkit.harness import CONTROLLER_USER, System
from testkit.waiting import eventually
from tests.support.audio import tone


def sealed(kind: CommandKind, uid: str, body: dict[str, object], keys: KeyPair) -> bytes:
    env = Envelope.new(kind, f"dev/{uid}", body, ttl=timedelta(seconds=60))
    return SignedMessage.seal(env, Signer(keys)).to_bytes()


async def publish(system: System, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", system.broker.port, username=CONTROLLER_USER,
                              password=system.mqtt_password,
                              identifier=f"test-cmd-{secrets.token_hex(3)}") as client:  # fmt: skip
        await client.publish(topic, payload, qos=1)


async def test_a_commanded_item_plays_on_through_a_desired_state_without_it_until_cancelled(
    sqlite_system: System, tmp_path: Path
) -> None:
    system = sqlite_system
    [station] = await system.add_stations(1)
    media = await Api.of(system).upload(tone(tmp_path / "long.wav", seconds=30.0))
    keys = KeyPair.load(system.signing_key_path)
    item = ScheduleItem(item_id="cmd-only-1", title="Cảnh báo", priority=Priority.EMERGENCY,
                        start_at=datetime.now(UTC) + timedelta(seconds=2),
                        media=[MediaRef(sha256=media["sha256"], size=media["size"],
                                        duration_s=media["duration_s"])])  # fmt: skip
    await publish(system, topics.cmd(station.uid),
                  sealed(CommandKind.PLAY, station.uid, PlayCommand(item=item).model_dump(mode="json"), keys))

    async def playing() -> bool:
        return station.sink.playing

    await eventually(playing, bool, timeout=20, what="the commanded item on air")
    # A newer desired state that does not list it (not retained: the controller's own follow).
    empty = DesiredState(version=10**6, horizon_until=datetime.now(UTC) + timedelta(hours=1))
    await publish(system, topics.desired(station.uid),
                  sealed(CommandKind.DESIRED_STATE, station.uid, empty.model_dump(mode="json"), keys))

    async def applied() -> int:
        return int(station.running.agent.store.get("desired_version", "0") or 0)

    await eventually(applied, lambda v: v == 10**6, timeout=10, what="the desired state applied")
    await asyncio.sleep(1.0)  # a window to see that nothing stops it (there is no event to wait for)
    assert station.sink.playing, "a desired state without the commanded item stopped it on air"
    assert station.running.agent.store.item_state(item.item_id) == "playing"

    cancel = CancelCommand(item_id=item.item_id).model_dump()
    await publish(system, topics.cmd(station.uid), sealed(CommandKind.CANCEL, station.uid, cancel, keys))
    await eventually(playing, lambda on: not on, timeout=10, what="the CANCEL stopping it")
