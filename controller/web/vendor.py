"""Front-end libraries installed from the npm registry (controller/web/frontend, `npm ci` in
scripts/setup.sh), served under /panel-vendor/ by a static mount: never committed, never a CDN.

A checkout without node/npm has no such files; the pages that use them ask `available()` and
fall back to what the server renders (the map page draws its stations as SVG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from controller.web.panel import CSP, runtime, with_headers

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "frontend" / "node_modules"
PREFIX = "/panel-vendor"
LEAFLET = ("leaflet/dist/leaflet.css", "leaflet/dist/leaflet.js",
           "leaflet.markercluster/dist/MarkerCluster.css",
           "leaflet.markercluster/dist/MarkerCluster.Default.css",
           "leaflet.markercluster/dist/leaflet.markercluster.js")  # fmt: skip


def available(files: tuple[str, ...] = LEAFLET) -> bool:
    return all((NODE_MODULES / f).is_file() for f in files)


def tile_origin(tile_url: str) -> str | None:
    """The scheme://host[:port] of a tile URL template, for the page's CSP img-src; None if unusable."""
    parts = urlsplit(tile_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in parts.netloc for c in " ;'\""):
        return None
    return f"{parts.scheme}://{parts.netloc.replace('{s}', '*')}"


def tile_settings(request: Request) -> dict[str, str]:
    """The tile URL template (only a usable http(s) one) and its attribution, from the settings."""
    cfg = runtime(request).settings
    url = cfg.map_tile_url.strip()
    return {"url": url if tile_origin(url) else "", "attribution": cfg.map_tile_attribution}


def with_map_headers(request: Request, resp: Response) -> Response:
    """The panel's CSP, plus the tile server's origin for images when tiles are configured."""
    resp = with_headers(resp)
    origin = tile_origin(tile_settings(request)["url"])
    if origin:
        resp.headers["Content-Security-Policy"] = CSP.replace(
            "img-src 'self' data:", f"img-src 'self' data: {origin}"
        )
    return resp


def map_assets(request: Request) -> dict[str, Any]:
    """What a page with a map (or a pick-on-map form) hands its template."""
    return {"leaflet": available(), "vendor": PREFIX, "tiles": tile_settings(request)}
