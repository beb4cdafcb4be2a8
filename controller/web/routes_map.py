"""The stations map (/map) and moving a station (pick on the map, or "use my location").

The markers come from `controller.usecases.stations_map` (the caller's area only), as JSON
for Leaflet (/map/stations.json) and drawn as SVG on the server, so the page shows every
station, its name and its state without tiles, without the npm files and without script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from controller.core.errors import UserError
from controller.core.permissions import Action
from controller.usecases import stations_map
from controller.web.pagekit import authorized_form, communes, page_ctx, to_int, user_error
from controller.web.panel import LoginRequired, current, redirect, render, runtime
from controller.web.routes_ops import station_page
from controller.web.vendor import map_assets, tile_settings, with_map_headers

router = APIRouter(include_in_schema=False)
SVG_W, SVG_H, SVG_PAD = 640, 420, 24
BAD_COMMUNE = ("Mã xã không hợp lệ: hãy chọn xã trong danh sách.",
               "Invalid commune: choose a commune from the list.")  # fmt: skip
BAD_POSITION = "Hãy nhập vĩ độ và kinh độ dạng số thập phân, ví dụ 21,3045 và 105,4821."


@dataclass(frozen=True)
class SvgMarker:
    """A station on the plain background: where, and what the marker says."""

    marker: stations_map.Marker
    x: float
    y: float


def project(markers: list[stations_map.Marker]) -> list[SvgMarker]:
    """Equirectangular, aspect kept at this latitude, padded so edge markers and names stay inside."""
    if not markers:
        return []
    lat0, lat1 = min(m.lat for m in markers), max(m.lat for m in markers)
    lon0, lon1 = min(m.lon for m in markers), max(m.lon for m in markers)
    kx = math.cos(math.radians((lat0 + lat1) / 2))
    span_x, span_y = max((lon1 - lon0) * kx, 1e-4), max(lat1 - lat0, 1e-4)
    scale = min((SVG_W - 2 * SVG_PAD) / span_x, (SVG_H - 2 * SVG_PAD) / span_y)
    off_x = (SVG_W - span_x * scale) / 2  # centred: one station sits in the middle
    off_y = (SVG_H - span_y * scale) / 2
    return [SvgMarker(m, round(off_x + (m.lon - lon0) * kx * scale, 1),
                      round(SVG_H - off_y - (m.lat - lat0) * scale, 1)) for m in markers]  # fmt: skip


def _commune_param(raw: str) -> tuple[int | None, bool]:
    """(commune id or None, valid?): empty means all communes."""
    if not raw.strip():
        return None, True
    value = to_int(raw)
    return (value, True) if value is not None and value > 0 else (None, False)


@router.get("/map", response_class=HTMLResponse)
def map_page(request: Request, commune: str = "") -> Response:
    ctx = page_ctx(request)
    commune_id, ok = _commune_param(commune)
    with runtime(request).db.session() as s:
        markers = stations_map.markers(s, ctx.user, commune_id=commune_id) if ok else []
        choices = communes(s, ctx.scope)
    resp = render(request, "map.html", status=200 if ok else 422, ctx=ctx, markers=markers,
                  svg=project(markers), svg_w=SVG_W, svg_h=SVG_H, communes=choices, commune_id=commune_id,
                  error=(BAD_COMMUNE[0], {}) if not ok else None, **map_assets(request))  # fmt: skip
    return with_map_headers(request, resp)


def _json_error(status: int, vi: str, en: str, lang: str) -> JSONResponse:
    return JSONResponse(
        {"detail": vi if lang == "vi" else en, "detail_vi": vi, "detail_en": en},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/map/stations.json")
def map_data(request: Request, commune: str = "") -> Response:
    """The markers of the caller's area as JSON: 401 without a session (no redirect for a fetch)."""
    rt = runtime(request)
    try:
        with rt.db.session() as s:
            ctx = current(request, s)
    except LoginRequired:
        return _json_error(401, "Cần đăng nhập để dùng chức năng này.", "Please log in to use this.", "vi")
    commune_id, ok = _commune_param(commune)
    if not ok:
        return _json_error(422, *BAD_COMMUNE, ctx.lang)
    with rt.db.session() as s:
        markers = stations_map.markers(s, ctx.user, commune_id=commune_id)
    body = {"stations": [m.to_json() for m in markers], "tiles": tile_settings(request)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _coordinate(value: Any) -> float | None:
    """A number as people type it: "21,3045" (Vietnamese decimal comma) or "21.3045"."""
    text = str(value or "").strip().replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@router.post("/ops/stations/{device_id}/position", response_class=HTMLResponse)
async def save_position(request: Request, device_id: int) -> Response:
    rt, form, ctx = await authorized_form(request, Action.DEVICE_MANAGE)
    lat, lon = _coordinate(form.get("lat")), _coordinate(form.get("lon"))
    error: tuple[str, dict[str, Any]] | None = None
    status = 422
    if lat is None or lon is None:
        error = (BAD_POSITION, {})
    else:
        with rt.db.session() as s:
            try:  # the use case checks the right and the station's area (404 / 403 / 422)
                stations_map.set_position(s, ctx.user, device_id, lat, lon)
                s.commit()
            except UserError as exc:
                error, status = user_error(exc, ctx.lang), exc.status
    if error is None:
        return redirect(f"/ops/stations/{device_id}?ok=position_saved")
    if status == 404 or status == 403:
        return render(request, "error.html", status=status, ctx=ctx, message=error)
    return station_page(request, ctx, device_id, status=status, error=error)
