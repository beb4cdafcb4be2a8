"""HTTP client of the province's source system: log in for a bearer token, post batches.

The token is renewed before `expires_in` runs out and, whatever the clock says, again
after a 401 (the province may revoke tokens early); a request that got a 401 is retried
once with the new token. Every failure is a `ProvincialError` with an operator message
key, so the status page can say what is wrong in Vietnamese.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from controller.services.provincial.config import ProvincialSettings


class ProvincialError(Exception):
    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(f"{key} {params}")
        self.key = key
        self.params = params


class LoginFailed(ProvincialError):
    """Wrong username/password (or a locked account): retrying soon will not help."""


class ProvincialClient:
    def __init__(
        self, settings: ProvincialSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._s = settings
        self._http = httpx.AsyncClient(
            base_url=settings.base_url or "", timeout=settings.timeout_s, verify=settings.verify_tls,
            transport=transport, headers={"User-Agent": "communecast-provincial/1"},
        )  # fmt: skip
        self._token: str | None = None
        self._token_valid_until = 0.0  # monotonic
        self.logins = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    def forget_token(self) -> None:
        self._token, self._token_valid_until = None, 0.0

    async def login(self) -> None:
        s = self._s
        try:
            password = s.read_password()
        except OSError as exc:
            raise LoginFailed("provincial.password_unreadable", path=str(s.password_file),
                              error=str(exc)) from exc
        if not s.username or not password:
            raise LoginFailed("provincial.no_credentials")
        body = {s.login_username_field: s.username, s.login_password_field: password}
        r = await self._request("POST", s.login_path, json=body, what="login")
        if r.status_code in (400, 401, 403):
            raise LoginFailed("provincial.login_failed", username=s.username, status=r.status_code)
        if not r.is_success:
            raise ProvincialError("provincial.rejected", what="login", status=r.status_code,
                                  detail=r.text[:200])
        try:
            data = r.json()
            token = str(data[s.token_field])
        except (ValueError, KeyError, TypeError):
            raise ProvincialError("provincial.bad_login_reply", field=s.token_field) from None
        expires_in = data.get(s.expires_in_field) if isinstance(data, dict) else None
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 3600.0
        margin = min(s.token_margin_s, lifetime / 2)
        self._token, self._token_valid_until = token, time.monotonic() + lifetime - margin
        self.logins += 1

    async def post_batch(self, path: str, records: list[dict[str, Any]], *, what: str) -> None:
        """POST {batch_field: records}; returns on 2xx, raises ProvincialError otherwise."""
        if self._token is None or time.monotonic() >= self._token_valid_until:
            await self.login()
        body = {self._s.batch_field: records}
        r = await self._request("POST", path, json=body, what=what, auth=True)
        if r.status_code == 401:  # expired or revoked early: log in again, retry once
            self.forget_token()
            await self.login()
            r = await self._request("POST", path, json=body, what=what, auth=True)
            if r.status_code == 401:
                self.forget_token()
                raise ProvincialError("provincial.unauthorized", what=what)
        if not r.is_success:
            raise ProvincialError("provincial.rejected", what=what, status=r.status_code, detail=r.text[:200])

    async def _request(
        self, method: str, path: str, *, json: Any, what: str, auth: bool = False
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}"} if auth and self._token else None
        try:
            return await self._http.request(method, path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise ProvincialError("provincial.unreachable", what=what,
                                  error=f"{exc.__class__.__name__}: {exc}"[:300]) from exc
