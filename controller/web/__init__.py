"""The web panel (docs/panel.md): server-rendered pages on the same service layer as the API."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from controller.web import vendor
from controller.web.panel import HERE, BadCsrf, Forbidden, LoginRequired, redirect, render, with_headers
from controller.web.routes import router

STATIC_PREFIX = "/panel-static"


def feature_routers() -> list[APIRouter]:
    """Every `controller/web/routes_*.py` with a module-level `router`: features add pages by adding files."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("routes_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        feature = getattr(module, "router", None)
        if isinstance(feature, APIRouter):
            found.append(feature)
    return found


def mount_panel(app: FastAPI) -> None:
    app.include_router(router)
    for feature in feature_routers():
        app.include_router(feature)
    app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="panel-static")
    # npm-installed front-end libraries (controller/web/vendor.py); absent until setup.sh ran npm ci.
    app.mount(vendor.PREFIX, StaticFiles(directory=vendor.NODE_MODULES, check_dir=False), name="panel-vendor")

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        from urllib.parse import quote

        if request.url.path.startswith("/panel/stream") or request.method != "GET":
            return with_headers(render(request, "error.html", status=401, ctx=None,
                                       message=("Cần đăng nhập để dùng chức năng này.", {})))
        return redirect(f"/login?next={quote(exc.next_path, safe='/')}")

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "error.html", status=403, ctx=None,
                      message=("Tài khoản của bạn không có quyền thực hiện thao tác này.", {}))

    @app.exception_handler(BadCsrf)
    async def bad_csrf(request: Request, exc: BadCsrf) -> Response:
        return render(request, "error.html", status=403, ctx=None,
                      message=("Biểu mẫu đã hết hạn hoặc không hợp lệ. Hãy tải lại trang rồi thử lại.", {}))
