from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from controller.api.deps import runtime
from controller.runtime import Runtime
from controller.services import health

router = APIRouter()


@router.get("/healthz")
def healthz(rt: Runtime = Depends(runtime)) -> JSONResponse:
    """200 only when the database answers and the broker acknowledged a round trip in the
    last few seconds (services/health.py); the body says which is down and the publish backlog."""
    report = health.check(rt.db, rt.bus)
    return JSONResponse(report.body(), status_code=200 if report.ok else 503)
