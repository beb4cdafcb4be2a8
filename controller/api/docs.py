"""/docs, /redoc and /openapi.json behind a login when `api_docs_public` is False.

The API description is a map of every route and parameter: useful to an attacker probing
a production controller, so there it needs a panel session cookie or a bearer token.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from controller.core.errors import UserError
from controller.request_guard import authenticated, credentials

SPEC = "/openapi.json"


def _logged_in(request: Request) -> bool:
    return authenticated(request.app, *credentials(dict(request.scope["headers"])))


def private_docs(app: FastAPI) -> APIRouter:
    """Routes that replace FastAPI's own docs (turned off in create_app) with login-only ones."""
    router = APIRouter(include_in_schema=False)

    def to_login(request: Request) -> Response:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @router.get(SPEC)
    def spec(request: Request) -> Response:
        if not _logged_in(request):
            raise UserError(401, "auth.required")
        return JSONResponse(app.openapi())

    @router.get("/docs")
    def swagger(request: Request) -> Response:
        if not _logged_in(request):
            return to_login(request)
        html: HTMLResponse = get_swagger_ui_html(openapi_url=SPEC, title=f"{app.title} - API")
        return html

    @router.get("/redoc")
    def redoc(request: Request) -> Response:
        if not _logged_in(request):
            return to_login(request)
        html: HTMLResponse = get_redoc_html(openapi_url=SPEC, title=f"{app.title} - API")
        return html

    return router
