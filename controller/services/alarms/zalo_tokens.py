"""The Zalo OA access token, refreshed by the controller (Zalo OA API v4).

Zalo's OA access token lives about 25 h; a refresh token (single use, valid for months) buys a new
pair: POST {zalo_oauth_url} with header `secret_key: <app secret>` and the form body
`refresh_token=…&app_id=…&grant_type=refresh_token`; the answer is
`{"access_token": …, "refresh_token": …, "expires_in": "90000"}` (or `{"error": <n>, …}`).
The refresh token **rotates**: the old one is dead once used, so the new one must be kept before
anything else happens.

Where the pair is kept: the database (`zalo_oa_tokens`, one row), not a file in the data dir.
Replicas each have their own data dir but share the database, and a rotated refresh token that
only one replica knows breaks every other one at its next refresh; the row also survives a
restart, and backups (encrypted) carry it. The first refresh token, app id and secret key come
from the environment only; a new refresh token there (its SHA-256 differs from the one the row
started from) starts a new chain, e.g. after the operator made one because the chain broke.

Who refreshes: whoever needs it (a message to send, or the dispatch-lease holder checking every
`zalo_token_check_s` so the pair stays fresh without alarms), but only after *claiming* the row:
`UPDATE … SET refreshing_by = me WHERE version = <seen> AND no live claim`. Exactly one replica
wins; the others wait (deadline) for the row's version to move and use the new token. The claim
expires after CLAIM_S, so a replica killed mid-refresh does not block the rest for long.

Tokens are never logged; only Zalo's error codes and descriptions are.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from controller.core.config import Settings
from controller.db.models_alerts import ZaloOaToken
from controller.db.session import Database

log = logging.getLogger(__name__)

# Zalo's answers meaning "this access token is invalid / has expired": refresh once and retry.
INVALID_TOKEN_ERRORS = frozenset({-216, -124})
ROW_ID = 1
CLAIM_S = 30.0  # longer than one refresh request (timeout 10 s)
WAIT_S = 35.0  # how long a replica waits for another one's refresh


class TokenUnavailable(Exception):
    """No usable access token (the refresh failed or was refused)."""


class TokenSource(Protocol):
    async def current(self) -> str:
        """An access token believed valid now."""
        ...

    async def after_rejection(self, rejected: str) -> str | None:
        """Zalo called `rejected` invalid/expired: a fresh token to try once, or None."""
        ...


class FixedToken:
    """COMMUNECAST_ZALO_OA_ACCESS_TOKEN alone: nothing to refresh with."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def current(self) -> str:
        return self._token

    async def after_rejection(self, rejected: str) -> str | None:
        return None


@dataclass(frozen=True)
class _Row:
    access_token: str | None
    expires_at: datetime | None
    version: int


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ZaloTokenStore:
    """The token pair in the database, refreshed before expiry and after a rejection."""

    def __init__(self, db: Database, cfg: Settings, *, holder: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), timeout_s: float = 10.0,
                 wait_s: float = WAIT_S) -> None:  # fmt: skip
        assert cfg.zalo_refreshable and cfg.zalo_oa_refresh_token and cfg.zalo_oa_secret_key
        self._db = db
        self._url = cfg.zalo_oauth_url
        self._app_id = cfg.zalo_oa_app_id or ""
        self._secret = cfg.zalo_oa_secret_key
        self._seed = cfg.zalo_oa_refresh_token
        self._margin = timedelta(seconds=cfg.zalo_token_refresh_margin_s)
        self._holder = (holder or cfg.mqtt_client_id)[:40] + "-" + secrets.token_hex(4)
        self._clock = clock
        self._wait_s = wait_s
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._lock = asyncio.Lock()  # one refresh at a time inside this process
        self.refreshes = 0  # refreshes this object made (tests, logs)

    # --- the row ---------------------------------------------------------------------------

    def _load(self) -> _Row:
        """The row, created (or restarted from a new environment refresh token) when needed."""
        seed = self._seed.get_secret_value()
        digest = _digest(seed)
        with self._db.session() as s:
            row = s.get(ZaloOaToken, ROW_ID)
            if row is not None and row.seed_digest == digest:
                return _Row(row.access_token, row.expires_at, row.version)
        if row is None:
            try:
                with self._db.session() as s:
                    s.add(ZaloOaToken(id=ROW_ID, refresh_token=seed, seed_digest=digest, version=0))
                log.info("zalo: token chain started from the configured refresh token")
            except IntegrityError:
                pass  # another replica created it first
        else:
            with self._db.session() as s:
                done = s.execute(update(ZaloOaToken).where(ZaloOaToken.id == ROW_ID,
                                                           ZaloOaToken.seed_digest != digest)
                                 .values(refresh_token=seed, seed_digest=digest, access_token=None,
                                         expires_at=None, version=ZaloOaToken.version + 1,
                                         refreshing_by=None, refreshing_until=None))  # fmt: skip
            if done.rowcount:  # type: ignore[attr-defined]
                log.warning("zalo: a new COMMUNECAST_ZALO_OA_REFRESH_TOKEN: token chain restarted from it")
        with self._db.session() as s:
            row = s.get(ZaloOaToken, ROW_ID)
            assert row is not None
            return _Row(row.access_token, row.expires_at, row.version)

    def _claim(self, version: int) -> str | None:
        """Take the right to refresh (the row at `version`, no live claim): the refresh token."""
        now = self._clock()
        with self._db.session() as s:
            won = s.execute(update(ZaloOaToken)
                            .where(ZaloOaToken.id == ROW_ID, ZaloOaToken.version == version,
                                   (ZaloOaToken.refreshing_until.is_(None))
                                   | (ZaloOaToken.refreshing_until < now))
                            .values(refreshing_by=self._holder,
                                    refreshing_until=now + timedelta(seconds=CLAIM_S)))  # fmt: skip
            if not won.rowcount:  # type: ignore[attr-defined]
                return None
            row = s.get(ZaloOaToken, ROW_ID)
            assert row is not None
            s.refresh(row)
            return row.refresh_token

    def _store(self, version: int, access: str, refresh: str, expires_at: datetime) -> bool:
        with self._db.session() as s:
            done = s.execute(update(ZaloOaToken)
                             .where(ZaloOaToken.id == ROW_ID, ZaloOaToken.version == version,
                                    ZaloOaToken.refreshing_by == self._holder)
                             .values(access_token=access, refresh_token=refresh, expires_at=expires_at,
                                     version=version + 1, refreshing_by=None,
                                     refreshing_until=None))  # fmt: skip
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def _release(self, version: int) -> None:
        with self._db.session() as s:
            s.execute(update(ZaloOaToken)
                      .where(ZaloOaToken.id == ROW_ID, ZaloOaToken.version == version,
                             ZaloOaToken.refreshing_by == self._holder)
                      .values(refreshing_by=None, refreshing_until=None))  # fmt: skip

    # --- Zalo --------------------------------------------------------------------------------

    async def _ask_zalo(self, refresh_token: str) -> tuple[str, str, datetime]:
        form = {"refresh_token": refresh_token, "app_id": self._app_id, "grant_type": "refresh_token"}
        try:
            r = await self._http.post(self._url, data=form,
                                      headers={"secret_key": self._secret.get_secret_value()})  # fmt: skip
            answer: Any = r.json() if r.content else {}
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenUnavailable(f"token refresh failed: {type(exc).__name__}") from None
        if not isinstance(answer, dict) or not answer.get("access_token") or not answer.get("refresh_token"):
            said = answer if not isinstance(answer, dict) else {k: answer.get(k) for k in
                                                               ("error", "error_name", "error_description",
                                                                "message") if k in answer}  # fmt: skip
            raise TokenUnavailable(f"token refresh refused: HTTP {r.status_code}, {said}")
        try:
            seconds = float(answer.get("expires_in") or 0)
        except (TypeError, ValueError):
            seconds = 0.0
        expires = self._clock() + timedelta(seconds=seconds or 3600)
        return str(answer["access_token"]), str(answer["refresh_token"]), expires

    # --- the TokenSource -----------------------------------------------------------------------

    def _fresh(self, row: _Row) -> bool:
        return bool(row.access_token and row.expires_at and row.expires_at - self._margin > self._clock())

    async def current(self) -> str:
        row = await asyncio.to_thread(self._load)
        if self._fresh(row):
            assert row.access_token
            return row.access_token
        return await self._refresh(row.version)

    async def after_rejection(self, rejected: str) -> str | None:
        row = await asyncio.to_thread(self._load)
        if row.access_token and row.access_token != rejected:
            return row.access_token  # another replica (or an earlier message) refreshed already
        return await self._refresh(row.version)

    async def _refresh(self, seen: int) -> str:
        async with self._lock:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._wait_s
            while True:
                refresh_token = await asyncio.to_thread(self._claim, seen)
                if refresh_token is not None:
                    return await self._refresh_claimed(seen, refresh_token)
                row = await asyncio.to_thread(self._load)
                if row.version != seen:
                    if row.access_token:
                        return row.access_token
                    seen = row.version  # restarted chain without an access token: refresh it
                    continue
                if loop.time() > deadline:
                    raise TokenUnavailable("another replica's token refresh did not finish in time")
                await asyncio.sleep(0.1)  # another replica holds the claim: wait for its result

    async def _refresh_claimed(self, version: int, refresh_token: str) -> str:
        try:
            access, refresh, expires = await self._ask_zalo(refresh_token)
        except BaseException as exc:
            await asyncio.to_thread(self._release, version)
            if isinstance(exc, TokenUnavailable):
                log.error("zalo: %s (a refused refresh token needs a new COMMUNECAST_ZALO_OA_REFRESH_TOKEN)",
                          exc)  # fmt: skip
            raise
        if not await asyncio.to_thread(self._store, version, access, refresh, expires):
            # Our claim expired and another replica took over: its answer wins; ours is lost.
            log.warning("zalo: token refreshed too late to keep (claim expired); using the stored one")
            row = await asyncio.to_thread(self._load)
            if row.access_token:
                return row.access_token
            raise TokenUnavailable("token refresh lost its claim")
        self.refreshes += 1
        log.info("zalo: access token refreshed (valid until %s)", expires.isoformat(timespec="seconds"))
        return access

    async def keep_fresh(self, is_leader: Callable[[], bool], every_s: float) -> None:
        """The leader's loop: refresh ahead of expiry even when no alarm needs a message."""
        while True:
            if is_leader():
                try:
                    await self.current()
                except Exception as exc:
                    log.warning("zalo: keeping the access token fresh failed: %s", exc)
            await asyncio.sleep(every_s)

    async def close(self) -> None:
        await self._http.aclose()
