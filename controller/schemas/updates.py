"""Signed agent updates and their rollouts (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controller.schemas.common import Out
from controller.schemas.targets import Targets


class RolloutState(Out):
    """One station's state for a release: sent, applied, rolled_back, refused, failed."""

    device_id: int
    state: str
    reason: str | None = None
    message: str | None = None
    command_id: str
    updated_at: str


class UpdateOut(Out):
    """A release: the wheel, its signed manifest and, when asked, each station's state."""

    id: int
    version: str
    wheel_name: str
    wheel_sha256: str
    size: int
    min_agent_version: str
    created_at: str
    wheel_url: str
    manifest: str
    signature: dict[str, Any]
    counts: dict[str, int] | None = None
    stations: list[RolloutState] | None = None


class RolloutResult(Out):
    """What POST .../rollout did: sent now, not sent (broker), already sent before."""

    bundle_id: int
    version: str
    sent: int
    not_sent: int
    already: int
    devices: list[int]


# -- requests ------------------------------------------------------------------------------------------
class RolloutRequest(BaseModel):
    """POST /api/v1/updates/{id}/rollout: a share of the stations, by a stable hash order."""

    model_config = ConfigDict(extra="forbid")

    percent: int = Field(default=100, ge=1, le=100)
    targets: Targets | None = None  # default: every station in the caller's area
