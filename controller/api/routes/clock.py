"""GET /api/v1/time: the controller's clock, for agents to measure their offset (NTP-like).

Unauthenticated on purpose: the time is no secret, and a station measures it before and
independently of everything else (device_agents/common/clock_offset.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from controller.schemas.enrollment import ControllerTime

router = APIRouter(prefix="/api/v1", tags=["clock"])


@router.get("/time", response_model=ControllerTime, response_model_exclude_unset=True)
def controller_time() -> dict[str, float | str]:
    """The moment the request was handled, to the microsecond: Unix seconds and the UTC
    instant. `agent doctor` measures the station's offset against it, NTP-style, instead of
    the 1 s resolution of the HTTP Date header."""
    now = datetime.now(UTC)
    return {"unix": now.timestamp(), "utc": now.isoformat()}
