"""Issue 21 item 2, on one station host (simulated hardware on a pty, no broker and no controller:
its controller_url leads nowhere, so any HTTP download would fail): audio inside a correctly
signed PLAY is verified against its MediaRef before it enters the media cache, and then plays as
if downloaded; bytes that do not match are refused with `media_mismatch` and nothing plays."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from communecast.mosquitto import free_port
from device_agents.common.config import AgentConfig
from device_agents.runner import RunningStation
from firmware_sim.bench import start_simulated_station
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import CommandKind, MediaRef, PlayCommand, Priority, ScheduleItem
from protocol.signing import KeyPair, Signer
from tests.support.audio import tone

KEYS = KeyPair.generate()


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[RunningStation]:
    config = AgentConfig(uid="spk-inline", controller_url="http://127.0.0.1:9",  # nobody serves media
                         mqtt_port=free_port(),  # nobody listens: messages are handed in directly
                         controller_public_keys=[KEYS.public_text], data_dir=tmp_path / "agent",
                         groups={"commune": 7})
    running = await start_simulated_station(config)
    try:
        yield running
    finally:
        await running.stop()


def signed_play(item_id: str, ref: MediaRef, start_in_s: float = 1.5) -> bytes:
    """A group PLAY signed by the controller's key, as emergency.start sends it."""
    item = ScheduleItem(item_id=item_id, broadcast_id=1, title="Cảnh báo lũ quét",
                        priority=Priority.EMERGENCY, volume=100, media=[ref],
                        start_at=datetime.now(UTC) + timedelta(seconds=start_in_s))
    env = Envelope.new(CommandKind.PLAY, "grp/commune/7", PlayCommand(item=item).model_dump(mode="json"),
                       ttl=timedelta(minutes=1), priority=Priority.EMERGENCY)
    return SignedMessage.seal(env, Signer(KEYS)).to_bytes()


def clip(tmp_path: Path) -> bytes:
    return tone(tmp_path / "clip.opus", freq=880, seconds=1.0).read_bytes()


def ref_for(data: bytes, inline: bytes | None = None) -> MediaRef:
    return MediaRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data), duration_s=1.0,
                    inline=base64.b64encode(data if inline is None else inline).decode())


async def test_audio_inside_the_play_is_verified_then_played_without_a_download(
    station: RunningStation, tmp_path: Path
) -> None:
    host, data = station.agent, clip(tmp_path)
    ref = ref_for(data)
    await host._on_message(topics.group_cmd("commune", 7), signed_play("b1", ref))
    assert host.rejections == {}
    media = host.role.media
    assert media.has(ref) and media.path_for(ref.sha256).read_bytes() == data
    assert (media.stored_inline, media.downloads, media.bytes_downloaded) == (1, 0, 0)
    stored = host.store.pending_items()
    assert [i.item_id for i in stored] == ["b1"] and not stored[0].has_inline  # kept by reference
    outbox = [e.payload for e in host.store.outbox_head(100)]
    assert any(b'"ack"' in p and b'"b1"' in p for p in outbox)
    played = await station.hardware.sink.wait_for(lambda p: True, timeout=15)
    assert played.completed and played.volume == 100 and str(media.path_for(ref.sha256)) in played.files
    assert media.downloads == 0  # it never asked the controller for the audio


@pytest.mark.parametrize("wrong", ["bytes", "size"])
async def test_inline_bytes_that_do_not_match_are_refused_and_nothing_plays(
    station: RunningStation, tmp_path: Path, wrong: str
) -> None:
    host, data = station.agent, clip(tmp_path)
    if wrong == "bytes":  # same length, one byte flipped: the sha256 does not match
        ref = ref_for(data, inline=data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:  # the right prefix, a byte short
        ref = ref_for(data, inline=data[:-1])
    await host._on_message(topics.group_cmd("commune", 7), signed_play("b2", ref, start_in_s=1.0))
    assert host.rejections == {"media_mismatch": 1}
    media = host.role.media
    assert not media.has(ref) and list(media.directory.iterdir()) == []  # nothing unverified kept
    assert host.store.item_state("b2") is None and host.store.pending_items() == []
    outbox = [e.payload for e in host.store.outbox_head(100)]
    refusal = [p for p in outbox if b'"rejected"' in p]
    assert len(refusal) == 1 and b"media_mismatch" in refusal[0] and b"b2" in refusal[0]
    assert not any(b'"ack"' in p for p in outbox)
    await asyncio.sleep(2.0)  # past its start: the horn stayed silent
    assert station.hardware.sink.playbacks == [] and media.downloads == 0
