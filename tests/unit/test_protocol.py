"""The wire contract: topics, envelopes and Ed25519 signatures."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from protocol import topics
from protocol.envelope import Envelope, Rejected, SignedMessage, open_message
from protocol.limits import INLINE_MEDIA_MAX_BYTES, MAX_PACKET_SIZE
from protocol.messages import (
    CommandKind,
    DesiredState,
    MediaRef,
    PlayCommand,
    Priority,
    RejectReason,
    ScheduleItem,
    StreamRef,
)
from protocol.signing import KeyPair, Signer, Verifier, b64u_encode

KEYS = KeyPair.generate()
SIGNER = Signer(KEYS)
VERIFIER = Verifier([KEYS.public])
TARGETS = frozenset({"dev/spk-1", "grp/commune/7"})


def seal(**kw: object) -> bytes:
    env = Envelope.new(CommandKind.PING, kw.pop("target", "dev/spk-1"),  # type: ignore[arg-type]
                       {"text": "Chuyển đổi số"}, ttl=timedelta(seconds=30), **kw)  # type: ignore[arg-type]
    return SignedMessage.seal(env, SIGNER).to_bytes()


def test_topic_tree_is_versioned_and_targets_bind_signatures() -> None:
    assert topics.desired("spk-1") == "cc/v1/dev/spk-1/desired"
    assert topics.group_cmd("commune", 7) == "cc/v1/grp/commune/7/cmd"
    assert topics.group_cmd("all") == "cc/v1/grp/all/cmd"
    assert topics.target_of(topics.cmd("spk-1")) == "dev/spk-1"
    assert topics.target_of(topics.desired("spk-1")) == "dev/spk-1"
    assert topics.target_of(topics.group_cmd("commune", 7)) == "grp/commune/7"
    parsed = topics.parse_device_topic("cc/v1/dev/spk-1/evt")
    assert parsed is not None and (parsed.uid, parsed.channel) == ("spk-1", "evt")
    assert topics.parse_device_topic("cc/v2/dev/spk-1/evt") is None
    with pytest.raises(ValueError):
        topics.cmd("spk/1")
    with pytest.raises(ValueError):
        topics.cmd("#")


def test_valid_message_opens_with_unicode_body_intact() -> None:
    env = open_message(seal(), VERIFIER, allowed_targets=TARGETS)
    assert env.body == {"text": "Chuyển đổi số"} and env.kind is CommandKind.PING


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda m: m.model_copy(update={"sig": m.sig[:-4] + "AAAA"}), RejectReason.BAD_SIGNATURE),
        (lambda m: m.model_copy(update={"kid": "0" * 16}), RejectReason.BAD_SIGNATURE),
        (lambda m: m.model_copy(update={"payload": b64u_encode(b'{"v":1}')}), RejectReason.BAD_SIGNATURE),
    ],
)
def test_tampering_is_detected(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    msg = SignedMessage.model_validate_json(seal())
    with pytest.raises(Rejected) as exc:
        open_message(mutate(msg).to_bytes(), VERIFIER, allowed_targets=TARGETS)
    assert exc.value.reason is reason


def test_expired_future_wrong_target_and_garbage_are_rejected() -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    with pytest.raises(Rejected) as exc:
        open_message(seal(now=past), VERIFIER, allowed_targets=TARGETS)
    assert exc.value.reason is RejectReason.EXPIRED and exc.value.envelope_id
    future = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(Rejected) as exc:
        open_message(seal(now=future), VERIFIER, allowed_targets=TARGETS)
    assert exc.value.reason is RejectReason.NOT_YET_VALID
    with pytest.raises(Rejected) as exc:
        open_message(seal(target="dev/spk-2"), VERIFIER, allowed_targets=TARGETS)
    assert exc.value.reason is RejectReason.WRONG_TARGET
    for garbage in (b"", b"{", b'{"kid":1}', "không phải JSON".encode()):
        with pytest.raises(Rejected) as exc:
            open_message(garbage, VERIFIER, allowed_targets=TARGETS)
        assert exc.value.reason is RejectReason.MALFORMED


def test_key_survives_restart_and_is_owner_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "keys" / "k.pem"
    first = KeyPair.load_or_create(path)
    assert KeyPair.load_or_create(path).public_text == first.public_text
    assert path.stat().st_mode & 0o777 == 0o600


def test_priorities_are_ordered_as_thong_tu_39() -> None:
    order = [Priority.FILLER, Priority.RELAY, Priority.NORMAL, Priority.PRIORITY, Priority.EMERGENCY]
    assert sorted(order, key=lambda p: p.rank) == order
    assert Priority.EMERGENCY.rank > Priority.NORMAL.rank


def test_desired_state_refuses_naive_times_and_bad_hashes() -> None:
    with pytest.raises(ValueError):
        DesiredState.model_validate({"version": 1, "horizon_until": "2026-12-01T00:00:00"})
    with pytest.raises(ValueError):
        DesiredState.model_validate({
            "version": 1, "horizon_until": "2026-12-01T00:00:00+07:00",
            "schedule": [{"item_id": "x", "start_at": "2026-12-01T05:30:00+07:00",
                          "media": [{"sha256": "abc", "size": 1, "duration_s": 1}]}],
        })  # fmt: skip


def test_reports_tolerate_newer_fields_but_commands_do_not() -> None:
    """A station on a newer agent keeps reporting to an older controller (extra fields are
    ignored); a command with a field the station does not know is refused, never half-obeyed."""
    from protocol.messages import Event, ReportedState, Telemetry

    now = datetime.now(UTC).isoformat()
    tele = Telemetry.model_validate({"ts": now, "uptime_s": 5, "battery_pct": 93})
    assert tele.uptime_s == 5 and not hasattr(tele, "battery_pct")
    assert ReportedState.model_validate({"online": True, "sim_iccid": "8984"}).online
    assert Event.model_validate({"id": "e" * 16, "kind": "ack", "ts": now, "future": 1}).kind == "ack"
    with pytest.raises(ValueError, match="extra"):
        DesiredState.model_validate({"version": 1, "horizon_until": now, "self_destruct": True})


def test_readiness_is_an_optional_instant_on_the_event() -> None:
    """`Event.ready_at` (docs/protocol.md, "Events"): an ISO-8601 instant with an offset, carried
    by a play_started; left out of the JSON when unset, so every other event reads exactly as
    before; an event from an older agent (none) still reads; an older controller's model
    (without the field) ignores it, as reports are tolerant."""
    import json

    from pydantic import AwareDatetime

    from protocol.messages import Event, EventKind, _Report

    now = datetime.now(UTC)
    ready = now - timedelta(milliseconds=1500)
    started = Event(id="e" * 16, kind=EventKind.PLAY_STARTED, ts=now, item_id="b7", broadcast_id=7,
                    ready_at=ready, detail={"started_at": now.timestamp()})
    wire = started.model_dump_json()
    assert Event.model_validate_json(wire).ready_at == ready
    assert json.loads(wire)["ready_at"].endswith("Z")  # UTC, with its offset
    ack = Event(id="a" * 16, kind=EventKind.ACK, ts=now, ref="r" * 32)
    assert "ready_at" not in json.loads(ack.model_dump_json())  # byte-for-byte the event of before
    assert "ready_at" not in ack.model_dump(mode="json")  # nor in the stored body
    older_agent = {"id": "o" * 16, "kind": "play_started", "ts": now.isoformat(), "item_id": "b7"}
    assert Event.model_validate(older_agent).ready_at is None
    with pytest.raises(ValidationError):  # an instant without an offset is no instant on this wire
        Event.model_validate({**older_agent, "ready_at": "2026-12-06T10:00:00"})

    class OlderControllerEvent(_Report):  # the event model before readiness
        id: str
        kind: EventKind
        ts: AwareDatetime
        item_id: str | None = None

    assert not hasattr(OlderControllerEvent.model_validate_json(wire), "ready_at")


def _clip(n: int) -> bytes:
    return bytes(range(256)) * (n // 256) + bytes(n % 256)


def _ref(data: bytes, **kw: object) -> MediaRef:
    return MediaRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data), duration_s=2.0,
                    inline=base64.b64encode(data).decode(), **kw)  # type: ignore[arg-type]


def test_audio_inside_a_play_up_to_the_documented_limit() -> None:
    """Issue 21: a short clip may travel inside the signed PLAY (base64 of the exact stored
    bytes, at most INLINE_MEDIA_MAX_BYTES); an item without it serializes exactly as before."""
    data = _clip(INLINE_MEDIA_MAX_BYTES)
    item = ScheduleItem(item_id="b1", start_at=datetime.now(UTC), priority=Priority.EMERGENCY,
                        media=[_ref(data)])
    wire = PlayCommand.model_validate_json(PlayCommand(item=item).model_dump_json())
    assert wire.item.media[0].inline_bytes() == data and wire.item.has_inline
    assert not wire.item.without_inline().has_inline
    plain = item.without_inline().model_dump(mode="json")
    sha = hashlib.sha256(data).hexdigest()
    assert plain["media"] == [{"sha256": sha, "size": len(data), "duration_s": 2.0}]
    # The signed PLAY stays well under the broker's packet limit.
    env = Envelope.new(CommandKind.PLAY, "grp/all", PlayCommand(item=item).model_dump(mode="json"),
                       ttl=timedelta(minutes=1))
    assert len(SignedMessage.seal(env, SIGNER).to_bytes()) < MAX_PACKET_SIZE // 3


@pytest.mark.parametrize(("inline", "why"), [
    (base64.b64encode(_clip(INLINE_MEDIA_MAX_BYTES + 1)).decode(), "larger than"),
    (base64.b64encode(_clip(4 * INLINE_MEDIA_MAX_BYTES)).decode(), "at most"),  # refused before decoding
    ("not*base64!", "not valid base64"),
    ("QUJD\nREVG", "not valid base64"),  # no line breaks or other characters outside the alphabet
    ("QUJDRA", "not valid base64"),  # unpadded
])
def test_oversize_or_invalid_inline_audio_is_refused(inline: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        MediaRef(sha256="0" * 64, size=1, duration_s=1.0, inline=inline)


def test_inline_audio_only_in_a_play_and_bounded_per_item() -> None:
    big = [_ref(_clip(100_000 + i)) for i in range(3)]  # three clips: over the item's limit
    with pytest.raises(ValidationError, match="at most"):
        ScheduleItem(item_id="b1", start_at=datetime.now(UTC), media=big)
    assert ScheduleItem(item_id="b1", start_at=datetime.now(UTC), media=big[:2]).has_inline
    item = ScheduleItem(item_id="b1", start_at=datetime.now(UTC), media=[_ref(b"abc")])
    with pytest.raises(ValidationError, match="desired state never carries inline"):
        DesiredState(version=1, horizon_until=datetime.now(UTC), schedule=[item])
    assert DesiredState(version=1, horizon_until=datetime.now(UTC), schedule=[item.without_inline()])
    with pytest.raises(ValidationError, match="filler never carries inline"):
        StreamRef(url="/api/v1/live/1/stream", fallback="filler", filler=[_ref(b"abc")])
