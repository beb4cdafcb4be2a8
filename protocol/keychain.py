"""Controller signing-key rotation and revocation: the key chain (docs/security.md, docs/protocol.md).

Two kinds of signed statement, each in the same wire form as an envelope
(`{"kid", "payload", "sig"}`, the signature over the exact payload bytes):

- a **link** `KeyLink`: "key `kid` (public key `public_key`) follows key `prev_kid`; the previous key
  stays valid until `overlap_until`". It is signed by `prev_kid` itself.
- a **revocation** `KeyRevocation`: "key `kid` is revoked": signed by a key that comes *after* it in
  the chain (a descendant), never by the key itself or an older one.

The controller publishes every link and every revocation it ever made, retained, on
`cc/v1/keys` (`protocol.topics.KEYS`) as one `KeyChain`. A station verifies it link by link from
the keys it already trusts (`TrustedKeys.apply`), so one that was offline for a whole overlap or
several rotations still converges. Rules, so a stolen old key gains nothing once it is revoked:

- a key has at most one successor: a second, different link from the same key is a fork and
  refused (an old key, once it has been followed, cannot announce another key);
- a link signed by a revoked key, or introducing a revoked key, is refused (unless it is the very
  link the station already holds: the chain keeps carrying it and that changes nothing);
- a revocation must be signed by a non-revoked descendant of the key it revokes (or, for a key
  the station has never heard of, by a key with no successor yet): an old key cannot revoke a
  newer one;
- nothing is ever forgotten: a replayed older chain (without the revocation) changes nothing.

Messages (`verify`) are accepted from a key that is trusted, not revoked, and, once a successor
has been announced, only until that link's `overlap_until`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from protocol.envelope import SignedMessage
from protocol.signing import (
    KeyRevokedError,
    SignatureError,
    Signer,
    Verifier,
    b64u_decode,
    key_id,
    public_key_from_text,
)

KID_PATTERN = r"^[0-9a-f]{16}$"
MAX_CHAIN = 256  # links and revocations each: one rotation a month is 20 years


class _Statement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyLink(_Statement):
    type: Literal["key_link"] = "key_link"
    kid: str = Field(pattern=KID_PATTERN)
    public_key: str = Field(min_length=40, max_length=50)  # base64url of the 32 raw bytes
    prev_kid: str = Field(pattern=KID_PATTERN)
    issued_at: AwareDatetime
    overlap_until: AwareDatetime


class KeyRevocation(_Statement):
    type: Literal["key_revocation"] = "key_revocation"
    kid: str = Field(pattern=KID_PATTERN)
    revoked_at: AwareDatetime
    reason: str = Field(default="", max_length=200)


class KeyChain(BaseModel):
    """What is retained on cc/v1/keys: the whole history, oldest first (order is not relied on)."""

    model_config = ConfigDict(extra="forbid")

    v: int = 1
    links: list[SignedMessage] = Field(default_factory=list, max_length=MAX_CHAIN)
    revocations: list[SignedMessage] = Field(default_factory=list, max_length=MAX_CHAIN)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def sign_statement(statement: KeyLink | KeyRevocation, signer: Signer) -> SignedMessage:
    return SignedMessage.seal_bytes(statement.model_dump_json().encode("utf-8"), signer)


def sign_link(link: KeyLink, previous: Signer) -> SignedMessage:
    if previous.kid != link.prev_kid:
        raise ValueError("a link is signed by the key it follows")
    if key_id(public_key_from_text(link.public_key)) != link.kid:
        raise ValueError("the link's kid is not its public key's id")
    return sign_statement(link, previous)


@dataclass
class KeyState:
    public_key: str
    not_after: datetime | None = None  # end of the overlap once a successor is known
    successor: str | None = None
    predecessor: str | None = None


@dataclass
class Refusal:
    what: str  # "link" | "revocation"
    kid: str | None  # the key the statement is about
    reason: str


@dataclass
class ChainOutcome:
    changed: bool = False
    learned: list[str] = field(default_factory=list)  # kids newly trusted
    revoked: list[str] = field(default_factory=list)  # kids newly revoked
    refused: list[Refusal] = field(default_factory=list)
    # Signed by keys this station never trusted (history from before it was enrolled, or a
    # forgery by an unknown key): not learnt, and not worth an event each time the chain comes.
    unverifiable: list[Refusal] = field(default_factory=list)


_WAIT = "wait"  # signed by a key not (yet) trusted: maybe a later link in the same chain teaches it
_KNOWN = "known"
_DONE = "done"


class TrustedKeys:
    """The controller keys a station trusts, with their place in the chain and the revocations.

    Pure and JSON-serialisable: the agent keeps it in its store (device_agents/common/trust.py),
    the controller and the unit tests use the same rules."""

    def __init__(self, keys: dict[str, KeyState] | None = None,
                 revoked: dict[str, str] | None = None) -> None:
        self.keys: dict[str, KeyState] = keys or {}
        self.revoked: dict[str, str] = revoked or {}  # kid -> revoked_at (ISO)

    @classmethod
    def from_public_keys(cls, texts: list[str]) -> TrustedKeys:
        keys = {}
        for text in texts:
            keys[key_id(public_key_from_text(text))] = KeyState(public_key=text.strip())
        return cls(keys)

    # -- persistence ------------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({
            "keys": {kid: {"public_key": k.public_key,
                           "not_after": k.not_after.isoformat() if k.not_after else None,
                           "successor": k.successor, "predecessor": k.predecessor}
                     for kid, k in sorted(self.keys.items())},
            "revoked": dict(sorted(self.revoked.items())),
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TrustedKeys:
        data = json.loads(text)
        keys = {kid: KeyState(public_key=k["public_key"],
                              not_after=datetime.fromisoformat(k["not_after"]) if k.get("not_after")
                              else None,
                              successor=k.get("successor"), predecessor=k.get("predecessor"))
                for kid, k in data.get("keys", {}).items()}
        return cls(keys, dict(data.get("revoked", {})))

    # -- messages -------------------------------------------------------------------------------------
    def status(self, kid: str, now: datetime | None = None) -> str:
        """`revoked`, `retired` (overlap over), `overlap`, `active`, or `unknown`."""
        if kid in self.revoked:
            return "revoked"
        key = self.keys.get(kid)
        if key is None:
            return "unknown"
        if key.not_after is None:
            return "active"
        return "retired" if (now or datetime.now(UTC)) >= key.not_after else "overlap"

    def verify(self, kid: str, payload: bytes, signature: str, *, now: datetime | None = None) -> None:
        """A message (envelope, update manifest): trusted, not revoked, within its overlap."""
        status = self.status(kid, now)
        if status == "revoked":
            raise KeyRevokedError(f"signing key {kid} was revoked at {self.revoked[kid]}")
        if status == "unknown":
            raise SignatureError(f"unknown signing key {kid!r}")
        if status == "retired":
            raise SignatureError(f"signing key {kid} was retired at {self.keys[kid].not_after}")
        self._signature(kid, payload, signature)

    def _signature(self, kid: str, payload: bytes, signature: str) -> None:
        Verifier([public_key_from_text(self.keys[kid].public_key)]).verify(kid, payload, signature)

    def descendants(self, kid: str) -> list[str]:
        out: list[str] = []
        key = self.keys.get(kid)
        while key is not None and key.successor is not None and key.successor not in out:
            out.append(key.successor)
            key = self.keys.get(key.successor)
        return out

    # -- the chain ------------------------------------------------------------------------------------
    def apply(self, chain: KeyChain) -> ChainOutcome:
        """Learn what can be verified from the keys already trusted, in whatever order the chain
        lists it (repeat until nothing more can be learnt); report what was refused."""
        outcome = ChainOutcome()
        links: list[tuple[SignedMessage, KeyLink]] = []
        revocations: list[tuple[SignedMessage, KeyRevocation]] = []
        for signed in chain.links:
            try:
                links.append((signed, KeyLink.model_validate(json.loads(b64u_decode(signed.payload)))))
            except (ValidationError, ValueError):
                outcome.refused.append(Refusal("link", None, "malformed"))
        for signed in chain.revocations:
            try:
                statement = json.loads(b64u_decode(signed.payload))
                revocations.append((signed, KeyRevocation.model_validate(statement)))
            except (ValidationError, ValueError):
                outcome.refused.append(Refusal("revocation", None, "malformed"))
        progress = True
        while progress:
            progress = False
            # Revocations first in each pass: a link signed by a key revoked in the same chain is refused.
            for entry in list(revocations):
                result = self._revocation(*entry, outcome)
                if result != _WAIT:
                    revocations.remove(entry)
                    progress = progress or result == _DONE
            for entry in list(links):
                result = self._link(*entry, outcome)
                if result != _WAIT:
                    links.remove(entry)
                    progress = progress or result == _DONE
        for _, link in links:
            outcome.unverifiable.append(
                Refusal("link", link.kid, f"signed by {link.prev_kid}, a key not trusted here"))
        for signed, rev in revocations:
            outcome.unverifiable.append(
                Refusal("revocation", rev.kid, f"signed by {signed.kid}, a key not trusted here"))
        return outcome

    def _link(self, signed: SignedMessage, link: KeyLink, outcome: ChainOutcome) -> str:
        prev = self.keys.get(link.prev_kid)
        if signed.kid != link.prev_kid:
            return self._refuse(outcome, "link", link.kid, "not signed by the key it follows")
        if prev is not None and prev.successor == link.kid and link.kid in self.keys:
            return _KNOWN  # the chain keeps carrying links already learnt, even once their signer is revoked
        if link.kid in self.revoked:
            return self._refuse(outcome, "link", link.kid, "announces a revoked key")
        if link.prev_kid in self.revoked:
            return self._refuse(outcome, "link", link.kid, f"signed by revoked key {link.prev_kid}")
        if prev is None:
            return _WAIT
        try:
            if key_id(public_key_from_text(link.public_key)) != link.kid:
                return self._refuse(outcome, "link", link.kid, "kid does not match the public key")
            self._signature(link.prev_kid, b64u_decode(signed.payload), signed.sig)
        except (SignatureError, ValueError):
            return self._refuse(outcome, "link", link.kid, "bad signature")
        if prev.successor is not None:
            return self._refuse(outcome, "link", link.kid,
                                f"fork: {link.prev_kid} is already followed by {prev.successor}")
        if link.kid == link.prev_kid or link.prev_kid in self.descendants(link.kid):
            return self._refuse(outcome, "link", link.kid, "a cycle")
        new = self.keys.setdefault(link.kid, KeyState(public_key=link.public_key))
        new.predecessor = link.prev_kid
        prev.successor = link.kid
        end = link.overlap_until.astimezone(UTC)
        prev.not_after = end if prev.not_after is None else min(prev.not_after, end)
        outcome.changed = True
        outcome.learned.append(link.kid)
        return _DONE

    def _revocation(self, signed: SignedMessage, rev: KeyRevocation, outcome: ChainOutcome) -> str:
        if rev.kid in self.revoked:
            return _KNOWN
        if signed.kid in self.revoked:
            return self._refuse(outcome, "revocation", rev.kid, f"signed by revoked key {signed.kid}")
        if signed.kid not in self.keys:
            return _WAIT
        if signed.kid == rev.kid:
            return self._refuse(outcome, "revocation", rev.kid, "a key cannot revoke itself")
        try:
            self._signature(signed.kid, b64u_decode(signed.payload), signed.sig)
        except (SignatureError, ValueError):
            return self._refuse(outcome, "revocation", rev.kid, "bad signature")
        if rev.kid in self.keys:
            if signed.kid not in self.descendants(rev.kid):
                return self._refuse(outcome, "revocation", rev.kid,
                                    f"signed by {signed.kid}, which does not come after it in the chain")
        elif self.keys[signed.kid].successor is not None:
            return self._refuse(outcome, "revocation", rev.kid, f"signed by {signed.kid}, an older key")
        self.revoked[rev.kid] = rev.revoked_at.astimezone(UTC).isoformat()
        outcome.changed = True
        outcome.revoked.append(rev.kid)
        return _DONE

    @staticmethod
    def _refuse(outcome: ChainOutcome, what: str, kid: str | None, reason: str) -> str:
        outcome.refused.append(Refusal(what, kid, reason))
        return "refused"
