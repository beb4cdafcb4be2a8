"""Stations in bulk over the API (issue 20): `POST /api/v1/devices/bulk` (controller/usecases/stations.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.schemas.common import BodyId, Out

# The API's names of the actions -> the use case's (the panel's form values).
BULK_ACTIONS = {"test_tone": "test_tone", "volume": "set_volume", "led_test": "led_test_pattern",
                "retire": "retire"}  # fmt: skip


class BulkRequest(BaseModel):
    """One action on many stations: `test_tone` (loudspeakers), `volume` (loudspeakers, with
    `volume` 0-100), `led_test` (LED boards: the test pattern), `retire` (with `confirm: true`;
    without it nothing changes and the reply lists what would stop)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["test_tone", "volume", "led_test", "retire"]
    # The use case says "at most 500 at a time" in words (stations.too_many); this only bounds the body.
    device_ids: list[BodyId] = Field(max_length=5000)
    volume: int | None = Field(default=None, ge=0, le=100)
    confirm: bool = False


class BulkStationOut(Out):
    """One station's result: `done`, `to_confirm` (a retire without `confirm`) or `refused` with
    `status`, `code` and `detail` (why, in the caller's language). `name` and `kind` only for a
    station of the caller's area; `command_id`: the diagnostic command sent
    (`GET /api/v1/devices/{id}/diagnostics/{command_id}` follows it)."""

    device_id: int
    result: Literal["done", "to_confirm", "refused"]
    name: str | None = None
    kind: str | None = None
    command_id: str | None = None
    status: int | None = None
    code: str | None = None
    detail: str | None = None


class BulkOut(Out):
    action: str
    confirmed: bool
    done: int
    refused: int
    results: list[BulkStationOut]
