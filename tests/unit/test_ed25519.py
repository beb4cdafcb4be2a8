"""A station verifies controller signatures on the process's libcrypto (protocol/ed25519.py), not
through the cryptography package: the same answers as cryptography, valid or not, and the ssl
module's error queue left clean."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import ed25519
from protocol.signing import KeyPair, PublicKey, SignatureError, Signer, Verifier, b64u_encode, raw_public

pytestmark = pytest.mark.skipif(not ed25519.available(),
                                reason="no usable libcrypto here: cryptography verifies")


def _cryptography_says(public: bytes, signature: bytes, data: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
    except InvalidSignature:
        return False
    return True


def test_the_same_answers_as_cryptography() -> None:
    cases = []
    for n in range(40):
        key = Ed25519PrivateKey.generate()
        public = raw_public(key.public_key())
        data = os.urandom(n * 37)
        sig = key.sign(data)
        flipped = bytes([sig[0] ^ 1]) + sig[1:]
        s_high = sig[:32] + bytes([*sig[32:63], sig[63] | 0xF0])  # S out of range: not canonical
        other = raw_public(Ed25519PrivateKey.generate().public_key())
        cases += [(public, sig, data, True), (public, flipped, data, False), (public, s_high, data, False),
                  (public, sig, data + b"x", False), (other, sig, data, False)]  # fmt: skip
    for public, sig, data, expected in cases:
        assert ed25519.verify(public, sig, data) is expected
        assert _cryptography_says(public, sig, data) is expected


def test_malformed_input_is_a_no_not_a_crash() -> None:
    key = Ed25519PrivateKey.generate()
    public = raw_public(key.public_key())
    sig = key.sign(b"m")
    assert ed25519.verify(public, sig[:63], b"m") is False
    assert ed25519.verify(public, sig + b"\0", b"m") is False
    assert ed25519.verify(public[:31], sig, b"m") is False
    assert ed25519.verify(b"\xff" * 32, sig, b"m") is False  # not a point on the curve
    with pytest.raises(ValueError, match="32 bytes"):
        PublicKey(public[:31])


def test_a_failed_verification_leaves_no_error_for_tls() -> None:
    key = Ed25519PrivateKey.generate()
    for _ in range(5):
        assert ed25519.verify(b"\xff" * 32, key.sign(b"m"), b"m") is False
    ctx = ssl.create_default_context()  # would raise with a stale error on the queue
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_verifier_takes_either_kind_of_key_and_refuses_what_it_should() -> None:
    keys = KeyPair.generate()
    signer = Signer(keys)
    kid, sig = signer.sign_as(b"payload")
    for verifier in (Verifier([keys.public]), Verifier([PublicKey(raw_public(keys.public))])):
        verifier.verify(kid, b"payload", sig)
        with pytest.raises(SignatureError, match="does not match"):
            verifier.verify(kid, b"payload!", sig)
        with pytest.raises(SignatureError, match="does not match"):
            verifier.verify(kid, b"payload", "not base64url !")
        with pytest.raises(SignatureError, match="does not match"):
            verifier.verify(kid, b"payload", b64u_encode(b"\0" * 64))
        with pytest.raises(SignatureError, match="unknown signing key"):
            verifier.verify("0" * 16, b"payload", sig)


def test_a_station_process_never_loads_cryptography() -> None:
    code = ("import sys, device_agents.runner, protocol.keychain; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
