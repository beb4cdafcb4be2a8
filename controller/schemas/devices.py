"""Stations, their broker credentials and events, and the areas they sit in."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from controller.schemas.common import BodyId, Number, Out
from controller.schemas.targets import AreaRef


class DeviceOut(Out):
    id: int
    uid: str
    name: str
    kind: str
    commune_id: int
    village_id: int | None = None
    tags: list[str]
    lat: Number | None = None
    lon: Number | None = None
    online: bool
    last_seen: str | None = None
    retired: bool


class RetiredDevice(DeviceOut):
    retired_at: str | None = None


class AgentConfig(Out):
    """What a station's agent needs to connect (shown once: it holds the broker password)."""

    uid: str
    kind: str
    mqtt_host: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    controller_url: str
    controller_public_keys: list[str]
    groups: dict[str, int]


class Credentials(Out):
    device: DeviceOut
    agent_config: AgentConfig


class CredentialsBatch(Out):
    issued: list[Credentials]


class DeviceEventOut(Out):
    """What the station sent (its event, protocol.messages.Event, as stored) and when it arrived."""

    id: str | None = None
    kind: str | None = None
    ts: str | None = None
    ref: str | None = None
    item_id: str | None = None
    broadcast_id: int | None = None
    reason: str | None = None
    detail: dict[str, Any] | None = None
    ready_at: str | None = None  # play_started: when the station could have sounded it (docs/protocol.md)
    received_at: str


class AreaOut(Out):
    """An administrative unit (docs/areas.md): province, group of communes, commune (kind xa,
    phuong or dac_khu) or village, with its official code and the former units it replaced."""

    id: int
    level: str
    kind: str | None = None
    name: str
    code: str | None = None
    parent_id: int | None = None
    group_ids: list[int] = Field(default_factory=list)  # a commune's groups
    former_names: list[str] = Field(default_factory=list)
    commune_ids: list[int] | None = None  # a group's communes (groups only)


class AreaImportOut(Out):
    """What an import of a province from the packages did (or would do, on a dry run)."""

    province: str
    province_id: int | None = None
    dry_run: bool
    created: int
    updated: int
    unchanged: int
    changes: list[str] = Field(default_factory=list)  # "created Xã Tam Dương (8869)"...


# -- requests ------------------------------------------------------------------------------------------
class DeviceCreate(BaseModel):
    """POST /api/v1/devices (and each row of a CSV import)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(pattern=r"^(speaker|led)$")
    commune_id: BodyId
    village_id: BodyId | None = Field(default=None, description="a village of that commune (optional)")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    tags: list[str] = Field(default_factory=list, max_length=20)


class AreaCreate(BaseModel):
    """POST /api/v1/areas."""

    model_config = ConfigDict(extra="forbid")

    level: str = Field(pattern=r"^(province|group|commune|village|district)$",
                       description="`district` is deprecated: it creates a group of communes")
    name: str = Field(min_length=1, max_length=200)
    code: str | None = Field(default=None, max_length=32)
    kind: str | None = Field(default=None, pattern=r"^(xa|phuong|dac_khu)$",
                             description="communes: xa, phuong or dac_khu (default: from the name)")
    parent_id: BodyId | None = None
    former_names: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=20)
    commune_ids: list[AreaRef] = Field(default_factory=list, max_length=5000,
                                       description="a group's member communes (ids or official codes)")
    group_ids: list[AreaRef] = Field(default_factory=list, max_length=50,
                                     description="a commune's groups (ids or codes)")


class AreaImport(BaseModel):
    """POST /api/v1/areas/import: a province by official code ("25") or name ("Phú Thọ")."""

    model_config = ConfigDict(extra="forbid")

    province: str = Field(min_length=1, max_length=100)
    dry_run: bool = False
