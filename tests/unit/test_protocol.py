"""The wire contract: topics, envelopes and Ed25519 signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from protocol import topics
from protocol.envelope import Envelope, Rejected, SignedMessage, open_message
from protocol.messages import CommandKind, DesiredState, Priority, RejectReason
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
