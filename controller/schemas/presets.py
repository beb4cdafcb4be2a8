"""Emergency presets (issue 20): a province's ready texts for the emergency form
(`/api/v1/emergency-presets`, controller/usecases/presets.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.schemas.common import BodyId, Out

# Lengths here only bound the request; the person-readable limits (label 60, title 300, text 1000,
# LED text 200, repeat 1-24 h, a known voice) are the use case's, the same 422 as the panel's form.


class PresetOut(Out):
    """One preset as the emergency form offers it. `source`: `province` (that province's own
    version, `id` is its row), `installation` (the installation-wide version) or `builtin`
    (no row: `id` null). `editable`: the caller may change the province's presets."""

    id: int | None
    key: str
    province_id: int | None
    source: Literal["province", "installation", "builtin"]
    label: str
    title: str
    text: str
    led_text: str
    voice: str
    repeat_hours: int | None
    editable: bool


class PresetCreate(BaseModel):
    """A province's own version of one preset key (storm, flood, flash_flood, fire, epidemic,
    all_clear). `province_id` left out: the caller's province (an unscoped admin: the
    installation-wide set); `repeat_hours` null: played once."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=32)
    province_id: BodyId | None = None
    label: str = Field(max_length=200)
    title: str = Field(max_length=400)
    text: str = Field(max_length=4000)
    led_text: str = Field(max_length=1000)
    voice: str = Field(default="vi-north", max_length=32)
    repeat_hours: int | None = Field(default=None, ge=-1000, le=1000)


class PresetUpdate(BaseModel):
    """Some fields of a stored preset; the ones left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=400)
    text: str | None = Field(default=None, max_length=4000)
    led_text: str | None = Field(default=None, max_length=1000)
    voice: str | None = Field(default=None, max_length=32)
    repeat_hours: int | None = Field(default=None, ge=-1000, le=1000)
