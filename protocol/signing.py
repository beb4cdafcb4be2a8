"""Ed25519 signing of controller->device messages.

The wire form is JWS-like: the envelope JSON is signed as exact bytes and carried
base64url-encoded, so there is no canonicalisation for two implementations to
disagree about.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from protocol import ed25519

# cryptography is imported where keys are made, loaded or signed with (the controller's side), not
# here: a station only verifies, with PublicKey below, and keeps ~8 MB of RSS for it (issue 21).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class SignatureError(ValueError):
    """The message is not signed by a key this station trusts."""


class KeyRevokedError(SignatureError):
    """Signed by a key the controller has revoked (protocol/keychain.py): refused as `revoked_key`."""


def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key (its 32 raw bytes) that verifies: through the libcrypto the process
    has loaded already (protocol/ed25519.py), or through cryptography where that is not usable."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != ed25519.PUBLIC_KEY_BYTES:
            raise ValueError("an Ed25519 public key is 32 bytes")

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raises ValueError unless `signature` is this key's signature of `data`."""
        ok = ed25519.verify(self.raw, signature, data)
        if ok is None:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            try:
                Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
            except InvalidSignature:
                ok = False
            else:
                ok = True
        if not ok:
            raise ValueError("bad Ed25519 signature")


def raw_public(public: PublicKey | Ed25519PublicKey) -> bytes:
    if isinstance(public, PublicKey):
        return public.raw
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: PublicKey | Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def key_fingerprint(public: PublicKey | Ed25519PublicKey) -> str:
    """What the enrollment code carries so a station can check the key it is handed (issue 16):
    base32 of the first 20 bytes of SHA-256 of the raw 32-byte key, 32 characters. 160 bits:
    out of reach of a second-preimage search, short enough for a QR code or to read aloud."""
    return base64.b32encode(hashlib.sha256(raw_public(public)).digest()[:20]).decode("ascii")


def normalize_fingerprint(text: str) -> str:
    """As typed: case, spaces and dashes do not matter."""
    return "".join(ch for ch in text.upper() if ch not in " -_\t")


def public_key_to_text(public: PublicKey | Ed25519PublicKey) -> str:
    """Base64url of the 32 raw bytes: short enough for an agent config file."""
    return b64u_encode(raw_public(public))


def public_key_from_text(text: str) -> PublicKey:
    return PublicKey(b64u_decode(text.strip()))


@dataclass(frozen=True)
class KeyPair:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def public_text(self) -> str:
        return public_key_to_text(self.public)

    @classmethod
    def generate(cls) -> KeyPair:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    @property
    def kid(self) -> str:
        return key_id(self.public)

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def load(cls, path: Path) -> KeyPair:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(key)

    def save(self, path: Path, *, replace: bool = False) -> None:
        """Owner-only (0600). Without `replace` an existing file is an error; with it the file is
        swapped atomically (a reader sees the old key or the new one, never half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = path.with_name(f".{path.name}.tmp") if replace else path
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.pem())
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(target, path)

    @classmethod
    def load_or_create(cls, path: Path) -> KeyPair:
        """Load the controller key, creating it (owner-only) on first start."""
        if path.exists():
            return cls.load(path)
        pair = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = pair.pem()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return pair


class Signer:
    """The controller's current signing key. Rotation (docs/security.md) swaps the key in place,
    so every holder of this object signs with the new key from then on; `sign_as` reads the key
    once, so a kid and its signature always belong together even during a swap."""

    def __init__(self, keys: KeyPair) -> None:
        self._current = (key_id(keys.public), keys)

    @property
    def kid(self) -> str:
        return self._current[0]

    @property
    def keys(self) -> KeyPair:
        return self._current[1]

    def replace(self, keys: KeyPair) -> None:
        self._current = (key_id(keys.public), keys)  # one assignment: atomic for readers

    def sign_as(self, payload: bytes) -> tuple[str, str]:
        """(kid, signature) of `payload` with the key current at this instant."""
        kid, keys = self._current
        return kid, b64u_encode(keys.private.sign(payload))

    def sign(self, payload: bytes) -> str:
        return self.sign_as(payload)[1]


class SignatureVerifier(Protocol):
    """What checks a signature: a fixed `Verifier`, or a station's `TrustedKeys` that follows
    key rotation (protocol/keychain.py). Raises SignatureError (KeyRevokedError for a revoked key)."""

    def verify(self, kid: str, payload: bytes, signature: str) -> None: ...


class Verifier:
    """Holds the public keys a station trusts, by key id (room for key rotation)."""

    def __init__(self, public_keys: list[PublicKey] | list[Ed25519PublicKey]) -> None:
        self._keys = {key_id(k): PublicKey(raw_public(k)) for k in public_keys}

    def verify(self, kid: str, payload: bytes, signature: str) -> None:
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(f"unknown signing key {kid!r}")
        try:
            key.verify(b64u_decode(signature), payload)
        except ValueError as exc:  # a bad signature, or one that is not base64url
            raise SignatureError("signature does not match") from exc
