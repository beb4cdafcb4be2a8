"""Issue 18, item 5: the key chain a station follows (protocol/keychain.py) and the agent's
persisted trust (device_agents/common/trust.py). Pure: no broker, no controller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device_agents.common.store import AgentStore
from device_agents.common.trust import StationTrust
from protocol.envelope import SignedMessage
from protocol.keychain import KeyChain, KeyLink, KeyRevocation, TrustedKeys, sign_link, sign_statement
from protocol.signing import KeyPair, KeyRevokedError, SignatureError, Signer

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def link(prev: KeyPair, new: KeyPair, *, overlap: timedelta = timedelta(days=7),
         signer: KeyPair | None = None, prev_kid: str | None = None) -> SignedMessage:
    statement = KeyLink(kid=new.kid, public_key=new.public_text, prev_kid=prev_kid or prev.kid,
                        issued_at=NOW, overlap_until=NOW + overlap)
    if signer is None:
        return sign_link(statement, Signer(prev))
    return sign_statement(statement, Signer(signer))  # a forgery: whatever key the attacker holds


def revocation(kid: str, by: KeyPair) -> SignedMessage:
    return sign_statement(KeyRevocation(kid=kid, revoked_at=NOW, reason="leaked"), Signer(by))


def signed(keys: KeyPair, text: bytes = b"play") -> tuple[str, bytes, str]:
    kid, sig = Signer(keys).sign_as(text)
    return kid, text, sig


@pytest.fixture
def k() -> list[KeyPair]:
    return [KeyPair.generate() for _ in range(4)]


def test_rotation_overlap_then_only_the_new_key(k: list[KeyPair]) -> None:
    trust = TrustedKeys.from_public_keys([k[0].public_text])
    out = trust.apply(KeyChain(links=[link(k[0], k[1], overlap=timedelta(hours=1))]))
    assert out.changed and out.learned == [k[1].kid] and not out.refused
    trust.verify(*signed(k[0]), now=NOW + timedelta(minutes=59))  # overlap: both
    trust.verify(*signed(k[1]), now=NOW + timedelta(minutes=59))
    with pytest.raises(SignatureError, match="retired"):
        trust.verify(*signed(k[0]), now=NOW + timedelta(hours=1))
    trust.verify(*signed(k[1]), now=NOW + timedelta(days=400))
    assert trust.status(k[0].kid, NOW) == "overlap" and trust.status(k[1].kid, NOW) == "active"


def test_a_station_offline_for_several_rotations_follows_the_chain_link_by_link(k: list[KeyPair]) -> None:
    trust = TrustedKeys.from_public_keys([k[0].public_text])
    chain = KeyChain(links=[link(k[0], k[1]), link(k[1], k[2]), link(k[2], k[3])],
                     revocations=[revocation(k[0].kid, k[3]), revocation(k[1].kid, k[3])])
    out = trust.apply(chain)
    assert out.learned == [k[1].kid, k[2].kid, k[3].kid]
    assert sorted(out.revoked) == sorted([k[0].kid, k[1].kid])
    assert not out.refused
    with pytest.raises(KeyRevokedError):
        trust.verify(*signed(k[0]), now=NOW)
    trust.verify(*signed(k[3]), now=NOW + timedelta(days=30))


def test_out_of_order_links_are_verified_in_chain_order(k: list[KeyPair]) -> None:
    trust = TrustedKeys.from_public_keys([k[0].public_text])
    out = trust.apply(KeyChain(links=[link(k[2], k[3]), link(k[1], k[2]), link(k[0], k[1])]))
    assert sorted(out.learned) == sorted(kp.kid for kp in k[1:]) and not out.refused
    # A link further down the chain alone proves nothing: its signer is not trusted (yet).
    alone = TrustedKeys.from_public_keys([k[0].public_text])
    out = alone.apply(KeyChain(links=[link(k[1], k[2])]))
    assert not out.changed and [u.kid for u in out.unverifiable] == [k[2].kid]
    assert alone.status(k[2].kid) == "unknown"


def test_a_forged_link_is_not_learnt(k: list[KeyPair]) -> None:
    trust = TrustedKeys.from_public_keys([k[0].public_text])
    forger = KeyPair.generate()
    # Signed by an unknown key while claiming to follow the trusted one.
    out = trust.apply(KeyChain(links=[link(k[0], k[1], signer=forger)]))
    assert not out.changed and out.refused[0].reason == "not signed by the key it follows"
    # The same, with the wire kid set to the trusted key: the signature does not verify.
    good = link(k[0], k[1])
    bad = link(k[0], forger, signer=forger)
    tampered = SignedMessage(kid=good.kid, payload=bad.payload, sig=bad.sig)
    out = trust.apply(KeyChain(links=[tampered]))
    assert not out.changed and out.refused[0].reason == "bad signature"
    # Chained to a key nobody trusts: unverifiable, nothing learnt.
    out = trust.apply(KeyChain(links=[link(forger, k[2])]))
    assert not out.changed and out.unverifiable and trust.status(k[2].kid) == "unknown"
    with pytest.raises(SignatureError, match="unknown"):
        trust.verify(*signed(forger), now=NOW)


def test_a_link_signed_by_a_revoked_key_is_refused(k: list[KeyPair]) -> None:
    trust = TrustedKeys.from_public_keys([k[0].public_text])
    trust.apply(KeyChain(links=[link(k[0], k[1]), link(k[1], k[2])],
                         revocations=[revocation(k[1].kid, k[2])]))
    assert trust.status(k[1].kid) == "revoked"
    evil = KeyPair.generate()
    # The thief of k1 announces their own key: refused (revoked signer); nothing learnt.
    out = trust.apply(KeyChain(links=[link(k[1], evil)]))
    assert not out.changed and "revoked" in out.refused[0].reason
    assert trust.status(evil.kid) == "unknown"
    # ... and cannot sign commands any more.
    with pytest.raises(KeyRevokedError):
        trust.verify(*signed(k[1]), now=NOW)


def test_a_stolen_old_key_cannot_fork_revoke_newer_keys_or_revoke_itself_out(k: list[KeyPair]) -> None:
    trust = TrustedKeys.from_public_keys([k[0].public_text])
    trust.apply(KeyChain(links=[link(k[0], k[1])]))  # k0 is in its overlap, not revoked yet
    evil = KeyPair.generate()
    out = trust.apply(KeyChain(links=[link(k[0], evil)]))  # a second successor of k0
    assert not out.changed and out.refused[0].reason.startswith("fork")
    out = trust.apply(KeyChain(revocations=[revocation(k[1].kid, k[0])]))  # old revokes new
    assert not out.changed and "does not come after it" in out.refused[0].reason
    out = trust.apply(KeyChain(revocations=[revocation(k[1].kid, k[1])]))
    assert not out.changed and out.refused[0].reason == "a key cannot revoke itself"
    trust.verify(*signed(k[1]), now=NOW)


def test_a_replayed_old_chain_does_not_undo_a_revocation(k: list[KeyPair]) -> None:
    trust = TrustedKeys.from_public_keys([k[0].public_text])
    old_chain = KeyChain(links=[link(k[0], k[1])])
    trust.apply(KeyChain(links=[link(k[0], k[1])], revocations=[revocation(k[0].kid, k[1])]))
    out = trust.apply(old_chain)  # the chain as it was before the revocation
    assert not out.changed and not out.refused  # the link is already known: silently nothing
    with pytest.raises(KeyRevokedError):
        trust.verify(*signed(k[0]), now=NOW)
    # The full chain keeps carrying the link signed by the now revoked k0: not a refusal.
    out = trust.apply(KeyChain(links=[link(k[0], k[1])], revocations=[revocation(k[0].kid, k[1])]))
    assert not out.changed and not out.refused


def test_the_trusted_set_survives_a_restart_and_a_repeated_chain_is_skipped(
        tmp_path: Path, k: list[KeyPair]) -> None:
    store = AgentStore(tmp_path / "agent.sqlite3")
    trust = StationTrust([k[0].public_text], store)
    payload = KeyChain(links=[link(k[0], k[1])], revocations=[revocation(k[0].kid, k[1])]).to_bytes()
    out = trust.apply_chain(payload)
    assert out is not None and out.revoked == [k[0].kid]
    assert trust.apply_chain(payload) is None  # the retained copy again after a reconnect
    store.close()
    again = StationTrust([k[0].public_text], AgentStore(tmp_path / "agent.sqlite3"))
    with pytest.raises(KeyRevokedError):
        again.verify(*signed(k[0]))
    again.verify(*signed(k[1]))
    # Re-enrolled with a new key: trust starts from the config again, the revocation stays.
    fresh = StationTrust([k[2].public_text], AgentStore(tmp_path / "agent.sqlite3"))
    fresh.verify(*signed(k[2]))
    with pytest.raises(KeyRevokedError):
        fresh.verify(*signed(k[0]))
    with pytest.raises(ValueError):
        fresh.apply_chain(b'{"links": "nope"}')
