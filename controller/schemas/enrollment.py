"""Enrollment: one-time codes, the agent's redeem call and CSV imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from controller.schemas.common import Number, Out
from controller.schemas.devices import AgentConfig, DeviceOut


class IssuedCode(Protocol):
    """A code just issued (services/enrollment.py IssuedCode), as far as its reply needs it."""

    device_id: int
    code: str
    expires_at: datetime


class EnrollmentCode(Out):
    """A one-time code for the technician (shown once), its QR image and the command it holds."""

    device_id: int
    code: str
    expires_at: str
    expires_at_local: str
    qr_url: str
    command: str
    key_fingerprint: str

    @classmethod
    def body(cls, issued: IssuedCode, *, expires_at_local: str, command: str,
             key_fingerprint: str) -> dict[str, Any]:  # fmt: skip
        return {
            "device_id": issued.device_id,
            "code": issued.code,
            "expires_at": issued.expires_at.isoformat(),
            "expires_at_local": expires_at_local,
            "qr_url": f"/api/v1/enrollment/qr.png?code={quote(issued.code)}",
            "command": command,
            "key_fingerprint": key_fingerprint,
        }


class EnrollRequest(BaseModel):
    """The agent's redeem call: the code is the credential (unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    code: str = Field(min_length=1, max_length=64)


class EnrolledAgentConfig(AgentConfig):
    """With TLS to the broker (settings agent_mqtt_tls) the configuration says so and may carry
    the broker's CA certificate."""

    mqtt_tls: bool | None = None
    mqtt_tls_server_name: str | None = None
    mqtt_ca_pem: str | None = None


class Enrolled(Out):
    device: DeviceOut
    agent_config: EnrolledAgentConfig


class ImportedDevice(DeviceOut):
    enrollment: EnrollmentCode | None = None


class Imported(Out):
    created: list[ImportedDevice]


class ControllerTime(Out):
    """The controller's clock: Unix seconds and the same instant in UTC."""

    unix: Number
    utc: str
