"""The target of a request: which stations (services/targets.py resolves it to rows)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.schemas.common import BodyId


class Targets(BaseModel):
    """Who hears it: every station, or stations named by id, commune, district or tag (the union).
    Part of most requests (broadcasts, schedules, LED text, live, relays, rollouts)."""

    model_config = ConfigDict(extra="forbid")

    all: bool = False
    devices: list[BodyId] = Field(default_factory=list)
    communes: list[BodyId] = Field(default_factory=list)
    districts: list[BodyId] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> Targets:
        if not (self.all or self.devices or self.communes or self.districts or self.tags):
            raise ValueError('targets is empty: use {"all": true}, {"devices": [...]} '
                             'or {"communes": [...]}')
        return self
