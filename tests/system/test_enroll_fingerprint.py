"""Issue 16, item 11: enrollment does not trust the controller's key on first use.

The code (and its QR / pasted command) carries the fingerprint of the controller's signing
key; the agent refuses an answer whose key does not match, before it stores anything. A man
in the middle of plain-HTTP enrollment (tests/support/mitm.py) swaps the key: refused,
nothing written; the same proxy passing the real key through: enrolled."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_agents.enroll import EnrollError, enroll, load
from protocol.signing import key_fingerprint, public_key_from_text
from testkit.harness import System
from tests.support.mitm import EnrollmentMitm


async def _code(system: System) -> dict:
    body = {"name": "Cụm loa dấu vân tay", "kind": "speaker", "commune_id": system.communes[0]["id"]}
    device = await system.api_json("POST", "/api/v1/devices", json=body)
    return await system.api_json("POST", f"/api/v1/devices/{device['id']}/enrollment")


def test_fingerprint_is_base32_of_the_first_20_bytes_of_sha256_of_the_raw_key() -> None:
    import base64
    import hashlib

    raw = bytes(range(32))
    key = public_key_from_text(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
    expected = base64.b32encode(hashlib.sha256(raw).digest()[:20]).decode()
    assert key_fingerprint(key) == expected and len(expected) == 32


async def test_a_swapped_controller_key_is_refused_and_nothing_is_stored(
    system: System, tmp_path: Path
) -> None:
    issued = await _code(system)
    fingerprint = issued["key_fingerprint"]
    assert f"--key-fingerprint {fingerprint}" in issued["command"]  # what the QR holds
    pi = tmp_path / "pi"
    async with EnrollmentMitm(system.base_url) as mitm:
        with pytest.raises(EnrollError, match="fingerprint") as refused:
            await enroll(mitm.url, issued["code"], pi, lang="en", key_fingerprint=fingerprint)
        assert mitm.swapped == 1
    assert "man in the middle" in str(refused.value)
    assert not pi.exists() or not any(pi.iterdir()), "a refused enrollment stored something"

    # Without a fingerprint the agent does not even ask (unless told to trust on first use).
    async with EnrollmentMitm(system.base_url) as mitm:
        with pytest.raises(EnrollError, match="trust-on-first-use"):
            await enroll(mitm.url, (await _code(system))["code"], pi, lang="en")
        assert mitm.requests == []


async def test_the_real_key_through_the_same_proxy_enrolls(system: System, tmp_path: Path) -> None:
    issued = await _code(system)
    pi = tmp_path / "pi"
    async with EnrollmentMitm(system.base_url, swap_key=False) as mitm:
        # Sloppily typed, as a technician would: case and dashes do not matter.
        done = await enroll(mitm.url, issued["code"], pi, key_fingerprint=issued["key_fingerprint"].lower())
    assert mitm.requests == ["POST /api/v1/enroll"]
    config = load(pi)
    assert [key_fingerprint(public_key_from_text(k)) for k in config.controller_public_keys] == [
        issued["key_fingerprint"]]  # fmt: skip
    assert done.path.exists()
