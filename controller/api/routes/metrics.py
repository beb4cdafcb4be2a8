"""GET /metrics in the Prometheus text format (docs/health.md).

With COMMUNECAST_METRICS_TOKEN set, a scraper must send `Authorization: Bearer <token>`;
without it, only clients on the loopback interface are served (a Prometheus or reverse
proxy on the same host), everyone else gets 403.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from controller.api.deps import runtime
from controller.core.errors import UserError
from controller.runtime import Runtime
from controller.services import metrics

router = APIRouter(tags=["metrics"])


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics")
def prometheus_metrics(request: Request, rt: Runtime = Depends(runtime)) -> Response:
    token = rt.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise UserError(401, "auth.required")
    elif not _loopback(request):
        raise UserError(403, "auth.forbidden")
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
