"""One driver for the API steps tests and benchmarks repeat: upload, send, wait for acks, play log.

Each test file used to carry its own `upload` (seven copies) and its own broadcast POST and
ack polling; they drifted (some asserted the status, some did not). `Api` is the one place
these steps are spelled, against a running controller's base URL with a bearer token
(`System.token`, or a token from `POST /api/v1/auth/token`). It speaks plain HTTP through
httpx, exactly as an operator's client would: no shortcuts into the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from communecast import http_clients
from testkit.waiting import eventually


class RunningController(Protocol):
    """What `Api.of` needs from a running system (testkit.harness.System has both)."""

    @property
    def base_url(self) -> str: ...

    @property
    def token(self) -> str: ...


@dataclass(frozen=True)
class Api:
    base_url: str
    token: str | None = None
    timeout: float = 60.0

    @classmethod
    def of(cls, system: RunningController) -> Api:
        """The admin's driver for a started system."""
        return cls(system.base_url, system.token)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One authenticated request (the token, when there is one, as a bearer header)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        async with http_clients.client(self.base_url, timeout=self.timeout) as http:
            return await http.request(method, path, headers=headers, **kwargs)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded body of a request that must succeed (the failure names the call)."""
        r = await self.request(method, path, **kwargs)
        if r.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {r.status_code}: {r.text}")
        return r.json()

    async def upload_response(self, name: str, data: bytes, *, lang: str = "vi") -> httpx.Response:
        """POST /api/v1/media as it answered: for tests of refusals (status, Vietnamese detail)."""
        headers = {"Accept-Language": lang}
        return await self.request("POST", "/api/v1/media", files={"file": (name, data)}, headers=headers)

    async def upload(self, path: Path) -> dict[str, Any]:
        """Upload an audio file that must be accepted (201); the stored media's JSON."""
        with path.open("rb") as fh:
            r = await self.request("POST", "/api/v1/media", files={"file": (path.name, fh)})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def send(
        self, media: dict[str, Any], start_at: datetime, targets: dict[str, Any], *,
        title: str = "Thông báo lịch tiêm chủng", priority: str = "normal", **fields: Any,
    ) -> dict[str, Any]:
        """Schedule a one-off broadcast of `media` (201 required); the broadcast's JSON."""
        body = {"title": title, "media_sha256": media["sha256"], "targets": targets,
                "start_at": start_at.isoformat(), "priority": priority, **fields}
        r = await self.request("POST", "/api/v1/broadcasts", json=body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def broadcast(self, broadcast_id: int) -> dict[str, Any]:
        return await self.json("GET", f"/api/v1/broadcasts/{broadcast_id}")  # type: ignore[no-any-return]

    async def wait_for_acks(
        self, broadcast_id: int, count: int, *, timeout: float = 10.0, interval: float = 0.05,
        what: str | None = None,
    ) -> dict[str, Any]:
        """The broadcast once exactly `count` stations have acknowledged it."""
        return await eventually(
            lambda: self.broadcast(broadcast_id), lambda b: b["acked"] == count,
            timeout=timeout, interval=interval, what=what or f"{count} acks",
        )  # fmt: skip

    async def play_log(self, broadcast_id: int | None = None, **params: Any) -> list[dict[str, Any]]:
        """Proof-of-play rows (GET /api/v1/play-log), optionally of one broadcast."""
        if broadcast_id is not None:
            params["broadcast_id"] = broadcast_id
        return await self.json("GET", "/api/v1/play-log", params=params)  # type: ignore[no-any-return]
