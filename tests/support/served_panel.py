"""The controller in-process behind a real HTTP server (uvicorn on 127.0.0.1), for tests
that need a real browser or a real streaming connection but not a whole `System`
(no broker: the MQTT side points at a closed port). 127.0.0.1 is a secure context, so
getUserMedia works there.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from communecast.mosquitto import free_port
from controller.app import create_app
from controller.core.config import Settings
from testkit.waiting import eventually


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test's loop keeps its own handlers
        return None


@dataclass
class ServedPanel:
    app: Any
    base_url: str
    admin_password: str

    @property
    def rt(self) -> Any:
        return self.app.state.runtime

    async def login(self, http: httpx.AsyncClient, username: str, password: str) -> None:
        await panel_login(http, username, password)


async def panel_login(http: httpx.AsyncClient, username: str, password: str) -> None:
    """Through the real /login form (double-submit CSRF cookie + hidden field), on any served
    panel (this one, or a controller process's)."""
    page = await http.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, "login page without CSRF field"
    r = await http.post("/login", data={"username": username, "password": password,
                                        "csrf": token.group(1), "next": "/"})  # fmt: skip
    assert r.status_code == 303, (r.status_code, r.text[:300])


@asynccontextmanager
async def served_panel(tmp_path: Path, database_url: str) -> AsyncIterator[ServedPanel]:
    password = "quan-tri-" + secrets.token_hex(4)
    settings = Settings(data_dir=tmp_path / "ctl", database_url=database_url, admin_password=password,
                        mqtt_port=free_port(), mqtt_client_id=f"served-{secrets.token_hex(3)}")  # fmt: skip
    app = create_app(settings)
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                    timeout_graceful_shutdown=1))  # fmt: skip
    serving = asyncio.create_task(server.serve())

    async def up() -> bool:
        return server.started or serving.done()

    try:
        await eventually(up, bool, timeout=30, what="the panel serving")
        if not server.started:
            await serving  # raises what went wrong
            raise RuntimeError("uvicorn did not start")
        yield ServedPanel(app, f"http://127.0.0.1:{port}", password)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
