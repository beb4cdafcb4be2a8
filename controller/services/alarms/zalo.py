"""Zalo Official Account messages (the "cs" consultation message of OA API v3).

POST {zalo_oa_url} with header `access_token: <OA token>` and the JSON body
`{"recipient": {"user_id": "<id of the user who follows the OA>"}, "message": {"text": "..."}}`.
Zalo answers 200 with `{"error": 0, "message": "Success", "data": {...}}`; a refusal is also a 200
with a non-zero `error` (e.g. -216 token invalid, -213 the user does not follow the OA), so the
JSON, not the status, says whether it went. Failures are logged and retried with a doubling
pause, then raised: the caller (the per-user notifier) logs and goes on with the next person.

The token comes from a `TokenSource` (zalo_tokens.py): the pair the controller refreshes itself
(COMMUNECAST_ZALO_OA_APP_ID, _SECRET_KEY, _REFRESH_TOKEN) or a fixed COMMUNECAST_ZALO_OA_ACCESS_TOKEN,
never from the repository. An answer "access token invalid/expired" (-216, -124) gets one refresh
and an immediate retry that does not count as an attempt. Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from controller.services.alarms.zalo_tokens import (
    INVALID_TOKEN_ERRORS,
    FixedToken,
    TokenSource,
    TokenUnavailable,
)

log = logging.getLogger(__name__)

ZALO_TEXT_MAX = 2000  # the OA API refuses longer texts


class ZaloFailed(Exception):
    """Zalo did not take the message (after the retries): its error code and message."""


class ZaloOaClient:
    def __init__(self, url: str, tokens: TokenSource | str, *, attempts: int = 4, backoff_s: float = 1.0,
                 timeout_s: float = 10.0) -> None:  # fmt: skip
        self.url = url
        self.name = f"zalo:{httpx.URL(url).host}"
        self.tokens: TokenSource = FixedToken(tokens) if isinstance(tokens, str) else tokens
        self._attempts = attempts
        self._backoff = backoff_s
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def send_text(self, user_id: str, text: str) -> dict[str, Any]:
        """The `data` of Zalo's answer (message_id, user_id) once it took the message."""
        body = {"recipient": {"user_id": user_id}, "message": {"text": text[:ZALO_TEXT_MAX]}}
        delay = self._backoff
        last = ""
        refreshed = False
        attempt = 0
        while attempt < self._attempts:
            attempt += 1
            try:
                token = await self.tokens.current()
                r = await self._http.post(self.url, json=body, headers={"access_token": token})
                answer = r.json() if r.content else {}
                code = answer.get("error") if isinstance(answer, dict) else None
                if r.status_code == 200 and code == 0:
                    data = answer.get("data")
                    return data if isinstance(data, dict) else {}
                said = answer.get("message") if isinstance(answer, dict) else r.text[:200]
                last = f"HTTP {r.status_code}, error {code}: {said}"
                if isinstance(code, int) and code in INVALID_TOKEN_ERRORS and not refreshed:
                    refreshed = True
                    fresh = await self.tokens.after_rejection(token)
                    if fresh is not None and fresh != token:
                        log.info("%s: access token refused (error %s); retrying with a refreshed one",
                                 self.name, code)  # fmt: skip
                        attempt -= 1  # the retry with the new token is not a failed attempt
                        continue
            except (httpx.HTTPError, ValueError, TokenUnavailable) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self._attempts:
                log.info("%s: message to %s failed (%s); retry %d/%d in %.1f s", self.name, user_id, last,
                         attempt, self._attempts - 1, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        log.warning("%s: giving up on the message to %s after %d attempts: %s", self.name, user_id,
                    self._attempts, last)  # fmt: skip
        raise ZaloFailed(
            f"{self.name}: message to {user_id} not sent after {self._attempts} attempts: {last}"
        )

    async def close(self) -> None:
        await self._http.aclose()
        close = getattr(self.tokens, "close", None)
        if close is not None:
            await close()
