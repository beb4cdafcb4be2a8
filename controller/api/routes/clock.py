"""GET /api/v1/time: the controller's clock, for agents to measure their offset (NTP-like).

Unauthenticated on purpose: the time is no secret, and a station measures it before and
independently of everything else (device_agents/common/clock_offset.py).
"""

from __future__ import annotations

import time

from fastapi import APIRouter

from controller.schemas.enrollment import ControllerTime

router = APIRouter(prefix="/api/v1", tags=["clock"])


@router.get("/time", response_model=ControllerTime, response_model_exclude_unset=True)
def controller_time() -> dict[str, float]:
    """Unix seconds at the moment the request was handled."""
    return {"unix": time.time()}
