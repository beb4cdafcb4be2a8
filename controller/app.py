"""FastAPI application factory: routes, error shapes, and the runtime's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from controller.api.docs import private_docs
from controller.api.routes import all_routers
from controller.core.config import Settings
from controller.core.errors import UserError
from controller.core.i18n import pick_lang, t
from controller.request_guard import RequestGuard
from controller.runtime import Runtime
from controller.schemas.targets import DEPRECATIONS

log = logging.getLogger(__name__)


class DeprecationNotes:
    """Deprecated inputs a request used (`targets.districts`, `level: district`, noted while
    validating it: controller/schemas/targets.py) come back as `Deprecation: true` and one
    `Warning: 299` header each, so API clients learn before the next release drops them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        notes: list[str] = []
        token = DEPRECATIONS.set(notes)

        async def send_with_notes(message: Any) -> None:
            if message["type"] == "http.response.start" and notes:
                headers = list(message.get("headers", []))
                headers.append((b"deprecation", b"true"))
                headers += [(b"warning", f'299 - "{n}"'.encode()) for n in notes]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_notes)
        finally:
            DEPRECATIONS.reset(token)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime.build(settings)
        app.state.runtime = rt
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    public = settings.api_docs_public
    app = FastAPI(title="communecast", version="0.1.0", lifespan=lifespan,
                  docs_url="/docs" if public else None, redoc_url="/redoc" if public else None,
                  openapi_url="/openapi.json" if public else None)  # fmt: skip

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        lang = pick_lang(request.headers.get("accept-language"))
        headers: dict[str, str] = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        headers |= getattr(exc, "headers", {})  # RetryLater: Retry-After
        return JSONResponse(
            {"detail": t(exc.key, lang, **exc.params), "code": exc.key, **exc.details()},
            status_code=exc.status,
            headers=headers,
        )

    @app.exception_handler(IntegrityError)
    async def conflict(request: Request, exc: IntegrityError) -> JSONResponse:
        """A unique or foreign key the route did not check first (or a concurrent insert that got
        there first): the caller's data conflicts with a row, which is a 409, not a 500."""
        log.info("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
        lang = pick_lang(request.headers.get("accept-language"))
        return JSONResponse({"detail": t("request.conflict", lang), "code": "request.conflict"},
                            status_code=409)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        lang = pick_lang(request.headers.get("accept-language"))
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"detail": t("request.invalid", lang), "code": "request.invalid", "errors": problems},
            status_code=422,
        )

    app.add_middleware(DeprecationNotes)
    # Outermost but for Starlette's error page: sizes and credentials before any body is read.
    app.add_middleware(RequestGuard, settings=settings)
    for router in all_routers():
        app.include_router(router)
    if not public:
        app.include_router(private_docs(app))
    from controller.web import mount_panel  # the web panel (docs/panel.md)

    mount_panel(app)
    return app
