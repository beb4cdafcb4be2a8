"""The controller's signing keys: rotation, revocation and the chain stations follow
(protocol/keychain.py; docs/security.md, "Key rotation and revocation").

Where things live:
- the database (`signing_keys`): every key's public half, the signed links and revocations,
  which key is active. Replicas share it, so they all sign with the same key and publish the
  same chain; `communecast keys rotate|revoke` writes it and the running controllers notice
  within `keyring_poll_s` (KeyringWatcher).
- `data_dir/keys/ring/<kid>.pem`: every private half (0600), and `data_dir/keys/controller_ed25519.pem`
  a copy of the active one (what the first start creates and offline tools such as
  `communecast update build --key` use). Private keys never enter the database. Replicas
  share the keys directory (docs/scaling.md); a replica that lacks the active key's file keeps
  its previous key and says so in its log every poll until the file is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.db.models_keys import SigningKey
from protocol import topics
from protocol.envelope import SignedMessage
from protocol.keychain import KeyChain, KeyLink, KeyRevocation, sign_link, sign_statement
from protocol.signing import KeyPair, Signer, key_fingerprint, public_key_from_text

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(days=7)


class KeyringError(RuntimeError):
    """A rotation or revocation that cannot be done; the message is for the operator."""


def ring_path(keys_dir: Path, kid: str) -> Path:
    return keys_dir / "ring" / f"{kid}.pem"


def load_private(keys_dir: Path, current_path: Path, kid: str) -> KeyPair | None:
    path = ring_path(keys_dir, kid)
    if path.exists():
        return KeyPair.load(path)
    if current_path.exists():
        pair = KeyPair.load(current_path)
        if pair.kid == kid:
            return pair
    return None


def ensure_genesis(session: Session, keys_dir: Path, current_path: Path) -> None:
    """First start (or the first start of a version with rotation): the key in
    controller_ed25519.pem (created if absent) becomes the first key of the chain."""
    if session.scalar(select(SigningKey.kid).limit(1)) is not None:
        return
    pair = KeyPair.load_or_create(current_path)
    if not ring_path(keys_dir, pair.kid).exists():
        with contextlib.suppress(FileExistsError):  # another replica just did
            pair.save(ring_path(keys_dir, pair.kid))
    try:
        with session.begin_nested():
            session.add(SigningKey(kid=pair.kid, public_key=pair.public_text))
    except IntegrityError:
        pass  # another replica inserted it first


def rows(session: Session) -> list[SigningKey]:
    return list(session.scalars(select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid)))


def active(session: Session) -> SigningKey:
    """The key with no successor that is not revoked: what the controller signs with."""
    all_rows = rows(session)
    followed = {r.prev_kid for r in all_rows if r.prev_kid}
    heads = [r for r in all_rows if r.kid not in followed and r.revoked_at is None]
    if len(heads) != 1:
        raise KeyringError(f"the key chain has {len(heads)} active keys; expected one")
    return heads[0]


def active_pair(session: Session, keys_dir: Path, current_path: Path) -> KeyPair:
    head = active(session)
    pair = load_private(keys_dir, current_path, head.kid)
    if pair is None:
        raise KeyringError(f"the active signing key {head.kid} has no private key in {keys_dir}/ring "
                           "(copy the keys directory from the other replica or restore it from the backup)")
    return pair


def rotate(session: Session, keys_dir: Path, current_path: Path, *, overlap: timedelta,
           now: datetime | None = None) -> tuple[SigningKey, KeyPair]:
    """A new key, announced by a link signed with the current one; the current one stays valid
    for `overlap`. The caller commits, then calls `publish_active_copy`."""
    if overlap < timedelta(0):
        raise KeyringError("the overlap cannot be negative")
    now = now or datetime.now(UTC)
    head = active(session)
    previous = load_private(keys_dir, current_path, head.kid)
    if previous is None:
        raise KeyringError(f"no private key for the active key {head.kid} in {keys_dir}")
    new = KeyPair.generate()
    new.save(ring_path(keys_dir, new.kid))  # before the row: no replica ever sees a row without its file
    link = KeyLink(kid=new.kid, public_key=new.public_text, prev_kid=head.kid, issued_at=now,
                   overlap_until=now + overlap)
    signed = sign_link(link, Signer(previous))
    head.retire_at = link.overlap_until
    row = SigningKey(kid=new.kid, public_key=new.public_text, prev_kid=head.kid,
                     link=signed.model_dump_json(), created_at=now)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise KeyringError("another rotation of the same key happened meanwhile; run `keys list`") from exc
    return row, new


def publish_active_copy(current_path: Path, pair: KeyPair) -> None:
    """controller_ed25519.pem = the active key (atomic replace), after the rotation committed."""
    pair.save(current_path, replace=True)


def revoke(session: Session, keys_dir: Path, current_path: Path, kid: str, *, reason: str = "",
           now: datetime | None = None) -> SigningKey:
    """Revoke an older key, signed by the active one. The active key itself cannot be revoked:
    rotate first (docs/security.md)."""
    now = now or datetime.now(UTC)
    row = session.get(SigningKey, kid)
    if row is None:
        raise KeyringError(f"no key {kid!r} (see `communecast keys list`)")
    if row.revoked_at is not None:
        raise KeyringError(f"key {kid} is already revoked")
    head = active(session)
    if head.kid == kid:
        raise KeyringError(f"key {kid} is the active key: run `communecast keys rotate` first, "
                           "then revoke it")
    signer = load_private(keys_dir, current_path, head.kid)
    if signer is None:
        raise KeyringError(f"no private key for the active key {head.kid} in {keys_dir}")
    statement = KeyRevocation(kid=kid, revoked_at=now, reason=reason[:200])
    row.revocation = sign_statement(statement, Signer(signer)).model_dump_json()
    row.revoked_at = now
    row.revoked_by = head.kid
    row.reason = reason[:200] or None
    session.flush()
    return row


def chain(all_rows: list[SigningKey]) -> KeyChain:
    links = [SignedMessage.model_validate_json(r.link) for r in all_rows if r.link]
    revoked = sorted((r for r in all_rows if r.revocation),
                     key=lambda r: (r.revoked_at or r.created_at, r.kid))
    return KeyChain(links=links, revocations=[SignedMessage.model_validate_json(r.revocation or "")
                                              for r in revoked])


def status_of(row: SigningKey, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.retire_at is None:
        return "active"
    return "retired" if now >= row.retire_at else "overlap"


def listing(session: Session, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    return [{
        "kid": r.kid, "status": status_of(r, now), "prev_kid": r.prev_kid,
        "fingerprint": key_fingerprint(public_key_from_text(r.public_key)),
        "created_at": r.created_at, "retire_at": r.retire_at, "revoked_at": r.revoked_at,
        "revoked_by": r.revoked_by, "reason": r.reason,
    } for r in rows(session)]


def digest(all_rows: list[SigningKey]) -> str:
    text = "|".join(f"{r.kid},{r.prev_kid},{r.retire_at},{r.revoked_at}" for r in all_rows)
    return hashlib.sha256(text.encode()).hexdigest()


class Publishes(Protocol):
    connected: asyncio.Event

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None: ...


class Sessions(Protocol):
    def session(self) -> Any: ...


@dataclass
class KeyringWatcher:
    """In every replica: follow the table, sign with its active key, keep cc/v1/keys retained.

    `on_change` (all stations' desired state again) runs after a rotation or revocation seen
    while running: the retained desired states signed with the old key would be refused once
    its overlap ends or it is revoked."""

    db: Sessions
    bus: Publishes
    signer: Signer
    keys_dir: Path
    current_path: Path
    poll_s: float
    on_change: Callable[[], None]
    _seen: str | None = None
    _published: str | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("signing keys: check failed; retrying")
            if self._published is None and not self.bus.connected.is_set():
                # Publish the chain as soon as the broker is there (start-up, after an outage).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.bus.connected.wait(), self.poll_s)
            else:
                await asyncio.sleep(self.poll_s)

    async def check(self) -> None:
        def read() -> tuple[str, KeyChain, str]:
            with self.db.session() as s:
                all_rows = rows(s)
                return digest(all_rows), chain(all_rows), active(s).kid

        state, key_chain, head = await asyncio.to_thread(read)
        if head != self.signer.kid:
            pair = await asyncio.to_thread(load_private, self.keys_dir, self.current_path, head)
            if pair is None:
                log.error("signing keys: the active key is %s but %s has no private key for it; still "
                          "signing with %s", head, self.keys_dir / "ring", self.signer.kid)
            else:
                log.warning("signing keys: now signing with %s (was %s)", head, self.signer.kid)
                self.signer.replace(pair)
        if not self.bus.connected.is_set():
            self._published = None  # again after the reconnect: heals a broker that lost it
        elif state != self._published:
            await self.bus.publish(topics.KEYS, key_chain.to_bytes(), qos=1, retain=True)
            self._published = state
        if self._seen is not None and state != self._seen:
            self.on_change()
        self._seen = state
