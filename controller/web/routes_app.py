"""The panel as an installable app: web app manifest, service worker, offline page.

Why these are routes and not static files: the service worker must be served from the
root (`/sw.js`) for its scope to cover every page, and its cache name carries a hash of the
app-shell files so that a new release replaces the old shell by itself. Nothing here is
per user: the three answers are the same for everyone (anonymous included) and hold no
data, so they need no login. What the worker may cache is decided in templates/sw.js:
the shell only, never an /api/ answer, never a page (network first, the offline page when
the network is gone).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from controller.web.panel import HERE, render, templates, with_headers

router = APIRouter(include_in_schema=False)

THEME = "#0e3a5b"  # the header's blue (panel.css .top)
OFFLINE = "/offline"
SHELL_FILES = ("panel.css", "panel.js", "shell.js", "datepicker.js", "icons/icon-192.png",
               "icons/icon-512.png")
SHELL = [OFFLINE, *(f"/panel-static/{name}" for name in SHELL_FILES)]


@cache
def shell_version() -> str:
    """A hash of the shell's files and the worker itself: a release that changes them gets a new cache."""
    digest = hashlib.sha256()
    for name in SHELL_FILES:
        digest.update((HERE / "static" / name).read_bytes())
    for name in ("sw.js", "offline.html"):
        digest.update((HERE / "templates" / name).read_bytes())
    return digest.hexdigest()[:12]


def manifest() -> dict[str, object]:
    """The web app manifest (https://www.w3.org/TR/appmanifest/): Vietnamese, like the panel."""
    icons = [
        {
            "src": f"/panel-static/icons/icon-{n}.png",
            "sizes": f"{n}x{n}",
            "type": "image/png",
            "purpose": "any",
        }
        for n in (192, 512)
    ]
    icons += [
        {
            "src": f"/panel-static/icons/maskable-{n}.png",
            "sizes": f"{n}x{n}",
            "type": "image/png",
            "purpose": "maskable",
        }
        for n in (192, 512)
    ]
    return {
        "name": "Truyền thanh cơ sở",
        "short_name": "Truyền thanh",
        "description": "Điều khiển loa truyền thanh và bảng điện tử của xã, phường.",
        "lang": "vi",
        "dir": "ltr",
        "id": "/",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "orientation": "any",
        "theme_color": THEME,
        "background_color": "#f4f6f8",
        "icons": icons,
    }  # fmt: skip


@router.get("/manifest.webmanifest")
def web_manifest() -> Response:
    body = json.dumps(manifest(), ensure_ascii=False)
    resp = Response(body, media_type="application/manifest+json")
    resp.headers["Cache-Control"] = "no-cache"
    return with_headers(resp)


@router.get("/sw.js")
def service_worker() -> Response:
    body = templates.get_template("sw.js").render(version=shell_version(), shell=SHELL, offline=OFFLINE)
    resp = Response(body, media_type="text/javascript")
    resp.headers["Cache-Control"] = "no-cache"  # the browser checks for a new worker on every visit
    resp.headers["Service-Worker-Allowed"] = "/"
    return with_headers(resp)


@router.get(OFFLINE, response_class=HTMLResponse)
def offline_page(request: Request) -> Response:
    """Shown by the worker instead of a page when the network is gone. Cached once for every
    language, so it says it in Vietnamese and then in English; it holds no user data."""
    resp = render(request, "offline.html", ctx=None, lang="vi")
    resp.headers["Cache-Control"] = "no-cache"
    return resp
