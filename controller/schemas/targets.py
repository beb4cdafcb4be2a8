"""The target of a request: which stations (services/targets.py resolves it to rows)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from controller.schemas.common import MAX_ID

AreaCode = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z._-]+$")]
"""An official administrative code ("8869", "08869": leading zeros do not matter)."""
AreaRef = Annotated[StrictInt, Field(ge=1, le=MAX_ID)] | AreaCode
"""An area by id (a JSON number) or by official code (a JSON string): `[12, "8869"]`."""

DEPRECATED_DISTRICTS = ('targets.districts is deprecated since the two-tier reform (1 July 2025) and will be '
                        'removed in the next release: the same ids are groups now, use targets.groups')
# Deprecation notes met while validating the current request (the app adds them to the reply's
# `Deprecation` / `Warning` headers, controller/app.py). None outside a request.
DEPRECATIONS: ContextVar[list[str] | None] = ContextVar("deprecations", default=None)


def note_deprecated(text: str) -> None:
    found = DEPRECATIONS.get()
    if found is not None and text not in found:
        found.append(text)


class Targets(BaseModel):
    """Who hears it: every station, or stations named by id, commune, group of communes or tag
    (the union). Communes and groups by id or official code (`{"communes": ["8869"]}`).
    `districts` is the former name of `groups` (kept for one release, deprecated).
    Part of most requests (broadcasts, schedules, LED text, live, relays, rollouts)."""

    model_config = ConfigDict(extra="forbid")

    all: bool = False
    devices: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(default_factory=list)
    communes: list[AreaRef] = Field(default_factory=list)
    groups: list[AreaRef] = Field(default_factory=list)
    districts: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, description="deprecated (one release): the same ids as `groups`")
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> Targets:
        districts = self.districts
        if not (self.all or self.devices or self.communes or self.groups or districts or self.tags):
            raise ValueError('targets is empty: use {"all": true}, {"devices": [...]} '
                             'or {"communes": [...]}')
        if districts:  # every district became a group with the same id (migration 0021)
            note_deprecated(DEPRECATED_DISTRICTS)
            self.groups = list(dict.fromkeys([*self.groups, *districts]))
            self.districts = []
        return self
