"""Issue 18, item 5, on one station host (simulated hardware on a pty, no broker needed): a
message signed by a key the station does not know yet is refused and reported, kept, and
accepted as soon as the key chain introduces its key; a refused link is reported once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from communecast.mosquitto import free_port
from device_agents.common.config import AgentConfig
from firmware_sim.bench import start_simulated_station
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.keychain import KeyChain, KeyLink, sign_link, sign_statement
from protocol.messages import CommandKind, MediaRef, PlayCommand, ScheduleItem
from protocol.signing import KeyPair, Signer


def play(uid: str, item_id: str, keys: KeyPair) -> bytes:
    item = ScheduleItem(item_id=item_id, title=item_id, start_at=datetime.now(UTC) + timedelta(hours=1),
                        media=[MediaRef(sha256="0" * 64, size=1, duration_s=1.0)])
    env = Envelope.new(CommandKind.PLAY, f"dev/{uid}", PlayCommand(item=item).model_dump(mode="json"),
                       ttl=timedelta(minutes=5))
    return SignedMessage.seal(env, Signer(keys)).to_bytes()


def chain(prev: KeyPair, new: KeyPair, *, signer: KeyPair | None = None) -> bytes:
    now = datetime.now(UTC)
    link = KeyLink(kid=new.kid, public_key=new.public_text, prev_kid=prev.kid, issued_at=now,
                   overlap_until=now + timedelta(days=7))
    signed = sign_link(link, Signer(prev)) if signer is None else sign_statement(link, Signer(signer))
    return KeyChain(links=[signed]).to_bytes()


async def test_a_message_from_a_key_not_known_yet_is_accepted_once_the_chain_arrives(tmp_path: Path) -> None:
    k0, k1 = KeyPair.generate(), KeyPair.generate()
    config = AgentConfig(uid="spk-keychain", controller_url="http://127.0.0.1:9",
                         mqtt_port=free_port(),  # nobody listens: messages are handed in directly
                         controller_public_keys=[k0.public_text], data_dir=tmp_path / "agent")
    station = await start_simulated_station(config)
    host = station.agent
    try:
        assert topics.KEYS in host.gate.subscriptions
        await host._on_message(topics.cmd(config.uid), play(config.uid, "early", k1))
        assert host.rejections == {"bad_signature": 1}
        assert host.store.item_state("early") is None

        # A forged link (signed by a key nobody trusts, claiming to follow k0): refused, reported.
        forger = KeyPair.generate()
        await host._on_message(topics.KEYS, chain(k0, k1, signer=forger))
        assert host.rejections.get("bad_key_link") == 1
        assert host.store.item_state("early") is None

        await host._on_message(topics.KEYS, chain(k0, k1))  # the real link: the held play is retried
        assert host.store.item_state("early") == "pending"
        await host._on_message(topics.KEYS, chain(k0, k1))  # the same chain again: nothing
        assert host.rejections == {"bad_signature": 1, "bad_key_link": 1}
        outbox = [e.payload for e in host.store.outbox_head(100)]
        assert sum(b'"rejected"' in p and b"bad_key_link" in p for p in outbox) == 1
    finally:
        await station.stop()
