"""The signed envelope around every controller->device message."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from protocol.messages import CommandKind, Priority, RejectReason
from protocol.signing import (
    KeyRevokedError,
    SignatureError,
    SignatureVerifier,
    Signer,
    b64u_decode,
    b64u_encode,
)


class Envelope(BaseModel):
    """What the controller means: id, validity window, kind, priority, target, body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = 1
    id: str = Field(min_length=8, max_length=64)
    kind: CommandKind
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    target: str = Field(min_length=1, max_length=200)
    priority: Priority = Priority.NORMAL
    body: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def new(
        cls,
        kind: CommandKind,
        target: str,
        body: dict[str, Any],
        *,
        ttl: timedelta,
        priority: Priority = Priority.NORMAL,
        now: datetime | None = None,
    ) -> Envelope:
        issued = now or datetime.now(UTC)
        return cls(
            id=uuid.uuid4().hex,
            kind=kind,
            issued_at=issued,
            expires_at=issued + ttl,
            target=target,
            priority=priority,
            body=body,
        )


class SignedMessage(BaseModel):
    """Wire form: {"kid", "payload": base64url(envelope JSON), "sig": base64url}."""

    model_config = ConfigDict(extra="forbid")

    kid: str
    payload: str
    sig: str

    @classmethod
    def seal(cls, envelope: Envelope, signer: Signer) -> SignedMessage:

        return cls.seal_bytes(envelope.model_dump_json().encode("utf-8"), signer)

    @classmethod
    def seal_bytes(cls, raw: bytes, signer: Signer) -> SignedMessage:
        kid, sig = signer.sign_as(raw)
        return cls(kid=kid, payload=b64u_encode(raw), sig=sig)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class Rejected(Exception):
    """A message a station must not act on; reason goes into the 'rejected' event."""

    def __init__(self, reason: RejectReason, message: str, envelope_id: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.envelope_id = envelope_id


CLOCK_SKEW = timedelta(seconds=120)


def open_message(
    data: bytes,
    verifier: SignatureVerifier,
    *,
    allowed_targets: frozenset[str],
    now: datetime | None = None,
) -> Envelope:
    """Verify and decode a signed message; raise Rejected with the reason.

    Replay detection needs the station's memory, so it is the caller's job.
    """

    try:
        wire = SignedMessage.model_validate_json(data)
        raw = b64u_decode(wire.payload)
    except (ValidationError, ValueError) as exc:
        raise Rejected(RejectReason.MALFORMED, "not a signed communecast message") from exc
    try:
        verifier.verify(wire.kid, raw, wire.sig)
    except KeyRevokedError as exc:
        raise Rejected(RejectReason.REVOKED_KEY, str(exc), _peek_id(raw)) from exc
    except SignatureError as exc:
        raise Rejected(RejectReason.BAD_SIGNATURE, str(exc), _peek_id(raw)) from exc
    try:
        env = Envelope.model_validate(json.loads(raw))
    except (ValidationError, ValueError) as exc:
        raise Rejected(RejectReason.MALFORMED, "signed payload is not an envelope") from exc
    now = now or datetime.now(UTC)
    if env.expires_at <= now:
        raise Rejected(RejectReason.EXPIRED, f"expired at {env.expires_at.isoformat()}", env.id)
    if env.issued_at > now + CLOCK_SKEW:
        raise Rejected(RejectReason.NOT_YET_VALID, "issued in the future", env.id)
    if env.target not in allowed_targets:
        raise Rejected(RejectReason.WRONG_TARGET, f"meant for {env.target}", env.id)
    return env


def _peek_id(raw: bytes) -> str | None:
    try:
        value = json.loads(raw).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
