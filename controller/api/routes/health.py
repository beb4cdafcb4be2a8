from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from controller.api.deps import runtime
from controller.runtime import Runtime

router = APIRouter()


@router.get("/healthz")
def healthz(rt: Runtime = Depends(runtime)) -> JSONResponse:
    """200 only when both the database and the broker connection are up."""
    db_ok = rt.db_ok()
    mqtt_ok = rt.bus.connected.is_set()
    body = {"database": "ok" if db_ok else "down", "mqtt": "ok" if mqtt_ok else "down"}
    return JSONResponse(body, status_code=200 if db_ok and mqtt_ok else 503)
