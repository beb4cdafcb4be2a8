"""Panel pages: the dashboard and its live updates, the station list and a station's page.

The other pages live in `routes_*.py` next to it (mounted by controller/web/__init__.py).
Each handler: who is it (session), may they (permissions), then a use case or service call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from controller.core.errors import NotFound
from controller.core.permissions import visible_device
from controller.db.models import Area
from controller.web import dashboard_alarms, dashboard_backup, queries
from controller.web.panel import (
    BadCsrf,
    Forbidden,
    current,
    render,
    runtime,
    with_headers,
)

router = APIRouter(include_in_schema=False)
SSE_INTERVAL_S = 2.0


# ---- dashboard and live updates -----------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        board = queries.dashboard(s, ctx.scope)
        dots, box = queries.station_map(s, ctx.scope)
        alarms = dashboard_alarms.open_alarms(s, ctx.scope, ctx.lang, ctx.rt.settings.timezone)
        # Admins only: the whole controller's backups, not one area's business.
        admin = ctx.user.role == "admin"
        backup = dashboard_backup.last_backup(s, ctx.rt.settings, ctx.lang) if admin else None
    return render(request, "dashboard.html", ctx=ctx, board=board, dots=dots, box=box,
                  map_w=queries.MAP_W, map_h=queries.MAP_H, alarms=alarms, backup=backup)


@router.get("/panel/stream")
async def stream(request: Request) -> Response:
    """Server-sent events: the dashboard counts and open alarms (user's area), whenever they change."""
    rt = runtime(request)
    with rt.db.session() as s:
        ctx = current(request, s)
    scope, lang = ctx.scope, ctx.lang

    def snapshot() -> dict[str, Any]:
        with rt.db.session() as s:
            return {**queries.dashboard(s, scope).summary(),
                    "alarms": dashboard_alarms.open_alarms(s, scope, lang, rt.settings.timezone)}

    async def events() -> AsyncIterator[bytes]:
        last = None
        idle = 0.0
        yield b"retry: 3000\n\n"
        while not await request.is_disconnected():
            data = json.dumps(await asyncio.to_thread(snapshot), separators=(",", ":"))
            if data != last:
                last, idle = data, 0.0
                yield f"event: counts\ndata: {data}\n\n".encode()
            elif idle >= 15:
                idle = 0.0
                yield b": keep-alive\n\n"
            await asyncio.sleep(SSE_INTERVAL_S)
            idle += SSE_INTERVAL_S

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# ---- stations -----------------------------------------------------------------------------


# The list itself (filters, bulk actions, CSV): routes_stations.py.


@router.get("/stations/{device_id}", response_class=HTMLResponse)
def station_detail(request: Request, device_id: int) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        try:
            device = visible_device(s, ctx.user, device_id)  # another area's station: not found
        except NotFound:
            return render(request, "error.html", status=404, ctx=ctx,
                          message=("Không tìm thấy trạm {id}.", {"id": device_id}))
        commune = s.get(Area, device.commune_id)
        village = s.get(Area, device.village_id) if device.village_id else None
        events = queries.recent_events(s, device_id)
        plays = queries.play_log(s, device_id=device_id, page_size=30)
    return render(request, "station.html", ctx=ctx, device=device, commune=commune, village=village,
                  events=events, plays=plays, telemetry=(device.reported or {}).get("telemetry") or {})


def error_page(request: Request, status: int, message: str) -> Response:
    return with_headers(render(request, "error.html", status=status, ctx=None, message=(message, {})))


__all__ = ["BadCsrf", "Forbidden", "error_page", "router"]
