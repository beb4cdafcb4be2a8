"""A simulated provincial 'Hệ thống thông tin nguồn' for tests and demos (docs/provincial.md).

It does what the connector needs from a province: a username/password login that returns
a bearer token with `expires_in`, two endpoints that take batches of station status and
play-log records, and dedupe by each record's idempotency key. Switches make it fail the
way real ones do: answer 503, refuse connections (it stops listening), store a batch and
still answer 503 (the reply got lost), or expire every token at once.

Run it alone: `communecast sim provincial --listen 127.0.0.1:8090` (controls under /_sim/).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from controller.services.provincial.config import ProvincialSettings

_DEFAULTS = ProvincialSettings()


@dataclass
class Received:
    """What the province holds: each record once by key, and how often each key arrived."""

    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    play_logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    receipts: Counter[str] = field(default_factory=Counter)
    logins: int = 0
    failed_logins: int = 0
    unauthorized: int = 0  # 401s answered to data requests
    unavailable: int = 0  # 503s answered

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.receipts.values())


class _Server(uvicorn.Server):
    """uvicorn inside someone else's event loop: leave their signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ProvincialSim:
    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, username: str,
        password: str, token_ttl_s: float = 3600.0, key_field: str = "maDinhDanh",
        batch_field: str = _DEFAULTS.batch_field, login_path: str = _DEFAULTS.login_path,
        status_path: str = _DEFAULTS.status_path, play_log_path: str = _DEFAULTS.play_log_path,
    ) -> None:  # fmt: skip
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.token_ttl_s = token_ttl_s
        self.key_field, self.batch_field = key_field, batch_field
        self.login_path, self.status_path, self.play_log_path = login_path, status_path, play_log_path
        self.received = Received()
        self.outage: str | None = None  # None | "503" | "refused"
        self.lose_replies = False  # store the batch, answer 503 anyway
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = self._make_app()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- switches ---------------------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every token issued so far stops working (the next request gets 401)."""
        self._tokens.clear()

    async def go_down(self, mode: str = "503") -> None:
        """'503': answer Service Unavailable; 'refused': stop listening (connection refused)."""
        if mode not in ("503", "refused"):
            raise ValueError("mode is '503' or 'refused'")
        self.outage = mode
        if mode == "refused":
            await self.stop()

    async def come_back(self) -> None:
        self.outage = None
        if self._server is None:
            await self.start()

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.port == 0:
            from communecast.mosquitto import free_port

            self.port = free_port()
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=1)
        server = _Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(), name="provincial-sim")
        while not server.started:
            if self._task.done():
                self._server = None
                await self._task  # raises what went wrong (port in use, ...)
                raise RuntimeError("provincial simulator did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is not None and task is not None:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def serve_forever(self) -> None:
        await self.start()
        await asyncio.Event().wait()  # until ^C (the switches may stop and restart the server meanwhile)

    # -- the HTTP side --------------------------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def _make_app(self) -> FastAPI:
        app = FastAPI(title="Hệ thống thông tin nguồn (mô phỏng)")
        sim = self

        @app.post(sim.login_path)
        async def login(request: Request) -> JSONResponse:
            if sim.outage:
                sim.received.unavailable += 1
                return JSONResponse({"message": "Hệ thống đang bảo trì"}, status_code=503)
            body = await request.json()
            if body.get("username") != sim.username or body.get("password") != sim.password:
                sim.received.failed_logins += 1
                return JSONResponse({"message": "Sai tên đăng nhập hoặc mật khẩu"}, status_code=401)
            token = secrets.token_urlsafe(24)
            sim._tokens[token] = time.monotonic() + sim.token_ttl_s
            sim.received.logins += 1
            return JSONResponse({"access_token": token, "token_type": "bearer",
                                 "expires_in": sim.token_ttl_s})

        async def take(request: Request, store: dict[str, dict[str, Any]]) -> JSONResponse:
            if sim.outage:
                sim.received.unavailable += 1
                return JSONResponse({"message": "Hệ thống đang bảo trì"}, status_code=503)
            if not sim._authorized(request):
                sim.received.unauthorized += 1
                return JSONResponse({"message": "Phiên đăng nhập đã hết hạn"}, status_code=401)
            body = await request.json()
            records = body.get(sim.batch_field) if isinstance(body, dict) else None
            if not isinstance(records, list) or not all(
                    isinstance(r, dict) and r.get(sim.key_field) for r in records):
                return JSONResponse({"message": f"thiếu '{sim.batch_field}' hoặc '{sim.key_field}'"},
                                    status_code=422)
            new = 0
            for r in records:
                key = str(r[sim.key_field])
                sim.received.receipts[key] += 1
                if key not in store:
                    store[key] = r
                    new += 1
            if sim.lose_replies:
                sim.received.unavailable += 1
                return JSONResponse({"message": "Hết thời gian chờ"}, status_code=503)
            return JSONResponse({"received": len(records), "new": new, "duplicates": len(records) - new})

        @app.post(sim.status_path)
        async def status(request: Request) -> JSONResponse:
            return await take(request, sim.received.status)

        @app.post(sim.play_log_path)
        async def play_log(request: Request) -> JSONResponse:
            return await take(request, sim.received.play_logs)

        @app.get("/_sim/state")
        async def state() -> dict[str, Any]:
            r = sim.received
            return {"status": len(r.status), "play_logs": len(r.play_logs), "duplicates": r.duplicates,
                    "logins": r.logins, "failed_logins": r.failed_logins, "unauthorized": r.unauthorized,
                    "unavailable": r.unavailable, "outage": sim.outage, "lose_replies": sim.lose_replies}

        @app.get("/_sim/records")
        async def records(kind: str = "play_logs") -> list[dict[str, Any]]:
            return list((sim.received.play_logs if kind == "play_logs" else sim.received.status).values())

        @app.post("/_sim/control")
        async def control(request: Request) -> dict[str, Any]:
            """{"outage": "503"|"none", "refuse_for_s": 10, "expire_tokens": true, "token_ttl_s": 5,
            "lose_replies": false}"""
            body = await request.json()
            if body.get("expire_tokens"):
                sim.expire_tokens()
            if "token_ttl_s" in body:
                sim.token_ttl_s = float(body["token_ttl_s"])
            if "lose_replies" in body:
                sim.lose_replies = bool(body["lose_replies"])
            if body.get("outage") in ("503", "none"):
                sim.outage = None if body["outage"] == "none" else "503"
            if body.get("refuse_for_s"):
                asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(
                    sim._refuse_for(float(body["refuse_for_s"]))))
            return await state()

        return app

    async def _refuse_for(self, seconds: float) -> None:
        """From the control API: stop listening for a while, then serve again (CLI use)."""
        server = self._server
        if server is None:
            return
        server.should_exit = True
        self.outage = "refused"
        await asyncio.sleep(seconds)
        self.outage = None
        self._server = None
        await self.start()


async def serve(host: str, port: int, username: str, password: str, token_ttl_s: float) -> None:
    sim = ProvincialSim(host, port, username=username, password=password, token_ttl_s=token_ttl_s)
    print(f"provincial source system (simulated) on {sim.url}: login {sim.login_path}, status "
          f"{sim.status_path}, play logs {sim.play_log_path}; controls: GET /_sim/state, POST /_sim/control")
    await sim.serve_forever()
