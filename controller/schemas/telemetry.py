"""A station's telemetry as a time series (docs/health.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from controller.schemas.common import Out


class Series(Out):
    """Raw points ({ts, value}) or buckets ({ts, min, avg, max, count}), oldest first."""

    device_id: int
    metric: str
    step: str
    from_: str = Field(alias="from")
    to: str
    points: list[dict[str, Any]]
