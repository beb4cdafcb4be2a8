"""Operations on the wire: remote diagnostics and signed agent updates (docs/operations.md).

Diagnostics are a closed enum of actions with typed, bounded parameters: a station can
be asked to play a test tone or click its relay, never to run a command line. Updates
carry a release manifest signed with the controller key (the same key agents already
trust for envelopes), so a bundle can also travel offline (USB stick) and still be
checked by the agent.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from protocol.signing import SignatureVerifier, Signer


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiagnosticAction(StrEnum):
    TEST_TONE = "test_tone"
    RELAY_CLICK = "relay_click"
    LED_TEST_PATTERN = "led_test_pattern"
    SET_VOLUME = "set_volume"
    RESTART_AGENT = "restart_agent"
    FETCH_LOGS = "fetch_logs"


class TestToneParams(_Model):
    __test__ = False  # not a pytest class

    seconds: float = Field(default=3.0, ge=1.0, le=10.0)
    frequency_hz: int = Field(default=1000, ge=100, le=4000)
    volume: int | None = Field(default=None, ge=0, le=100)  # None: the station's volume


class RelayClickParams(_Model):
    hold_s: float = Field(default=1.0, ge=0.2, le=5.0)  # how long the relay stays toggled


class LedTestPatternParams(_Model):
    seconds: float = Field(default=6.0, ge=1.0, le=60.0)


class SetVolumeParams(_Model):
    volume: int = Field(ge=0, le=100)


class RestartAgentParams(_Model):
    pass


class FetchLogsParams(_Model):
    lines: int = Field(default=100, ge=1, le=500)


PARAMS: dict[DiagnosticAction, type[_Model]] = {
    DiagnosticAction.TEST_TONE: TestToneParams,
    DiagnosticAction.RELAY_CLICK: RelayClickParams,
    DiagnosticAction.LED_TEST_PATTERN: LedTestPatternParams,
    DiagnosticAction.SET_VOLUME: SetVolumeParams,
    DiagnosticAction.RESTART_AGENT: RestartAgentParams,
    DiagnosticAction.FETCH_LOGS: FetchLogsParams,
}


class DiagnosticCommand(_Model):
    """Body of a `diagnostic` envelope: {"action": ..., "params": {...}}."""

    action: DiagnosticAction
    params: dict[str, Any] = Field(default_factory=dict)

    def typed_params(self) -> Any:
        """The params as the action's model; raises ValueError when they do not fit."""
        return PARAMS[self.action].model_validate(self.params)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> DiagnosticCommand:
        """Validate a body fully (action and its params) or raise ValueError."""
        cmd = cls.model_validate(body)
        cmd.typed_params()
        return cmd


def is_known_action(value: object) -> bool:
    return isinstance(value, str) and value in DiagnosticAction._value2member_map_


# -- updates ---------------------------------------------------------------------------------
class UpdateManifest(_Model):
    """What a release is; signed as exact bytes, like an envelope."""

    format: int = 1
    package: str = "communecast"
    version: str = Field(pattern=r"^[0-9]+(\.[0-9]+){0,3}([a-z0-9.+-]*)$", max_length=40)
    wheel: str = Field(pattern=r"^[A-Za-z0-9_.+-]+\.whl$", max_length=200)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1, le=200 * 1024 * 1024)
    min_agent_version: str = Field(default="0.0.0", max_length=40)
    created_at: AwareDatetime


class ManifestSignature(_Model):
    kid: str = Field(min_length=1, max_length=64)
    sig: str = Field(min_length=1, max_length=200)


class UpdateCommand(_Model):
    """Body of an `update` envelope: the signed manifest and where to fetch the wheel."""

    manifest: str = Field(min_length=2, max_length=8192)  # exact signed bytes, UTF-8 JSON
    signature: ManifestSignature
    wheel_url: str = Field(min_length=1, max_length=500)  # relative to controller_url, or absolute


def sign_manifest(manifest: UpdateManifest, signer: Signer) -> tuple[str, ManifestSignature]:
    text = manifest.model_dump_json()
    kid, sig = signer.sign_as(text.encode("utf-8"))
    return text, ManifestSignature(kid=kid, sig=sig)


def verify_manifest(text: str, signature: ManifestSignature, verifier: SignatureVerifier) -> UpdateManifest:
    """Check the signature first, then parse; raises SignatureError or ValueError."""
    verifier.verify(signature.kid, text.encode("utf-8"), signature.sig)
    try:
        return UpdateManifest.model_validate(json.loads(text))
    except (ValidationError, ValueError) as exc:
        raise ValueError(f"signed manifest is not valid: {exc}") from exc


def version_tuple(version: str) -> tuple[int, ...]:
    """Numeric prefix of a dotted version ('0.2.1rc1' -> (0, 2, 1)), for ordering checks."""
    out: list[int] = []
    for part in version.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)
