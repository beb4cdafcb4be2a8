"""The Zalo OA token refresh against a local Zalo (tests/support/zalo_server.py), on SQLite and
PostgreSQL: an expired token is refreshed before the message goes; a token Zalo refuses (-216) is
refreshed once and the message still goes; the rotated refresh token is in the database, so a
new service object (a restart) goes on from it and not from the environment's used one; two
replicas needing a refresh at once make ONE refresh; no token ever reaches the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.core.config import Settings
from controller.db.models_alerts import ZaloOaToken
from controller.db.session import Database
from controller.services.alarms.zalo import ZaloFailed, ZaloOaClient
from controller.services.alarms.zalo_tokens import ZaloTokenStore
from tests.support.zalo_server import APP_ID, SECRET_KEY, ZaloOaServer

FIRST_REFRESH = "rt0-first-refresh-token-from-the-environment"
T0 = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def zalo() -> Iterator[ZaloOaServer]:
    z = ZaloOaServer(first_refresh_token=FIRST_REFRESH)
    yield z
    z.close()


def settings(tmp_path: Path, zalo: ZaloOaServer, refresh: str = FIRST_REFRESH) -> Settings:
    return Settings(data_dir=tmp_path, zalo_oa_url=zalo.message_url, zalo_oauth_url=zalo.oauth_url,
                    zalo_oa_app_id=APP_ID, zalo_oa_secret_key=SECRET_KEY,  # type: ignore[arg-type]
                    zalo_oa_refresh_token=refresh)  # type: ignore[arg-type]  # fmt: skip


def client(db: Database, cfg: Settings, clock: Clock, holder: str = "replica-a") -> ZaloOaClient:
    store = ZaloTokenStore(db, cfg, holder=holder, clock=clock, wait_s=20)
    return ZaloOaClient(cfg.zalo_oa_url, store, attempts=2, backoff_s=0.01)


def stored(db: Database) -> ZaloOaToken:
    with db.session() as s:
        row = s.get(ZaloOaToken, 1)
        assert row is not None
        s.expunge(row)
        return row


async def test_refresh_before_expiry_after_rejection_and_across_a_restart(
    db: Database, zalo: ZaloOaServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg, clock = settings(tmp_path, zalo), Clock()
    # 1. No access token yet (only the environment's refresh token): refreshed, then delivered.
    c = client(db, cfg, clock)
    text = "Cảnh báo: Tủ thiết bị quá nóng – Cụm loa 01"
    await c.send_text("1000000000001", text)
    assert zalo.refreshes == 1 and zalo.texts_to("1000000000001") == [text]
    row = stored(db)
    assert (row.access_token, row.refresh_token) == (zalo.access_token, zalo.refresh_token)
    assert row.expires_at == T0 + timedelta(seconds=90000)
    # Still fresh an hour later: no refresh.
    clock.now = T0 + timedelta(hours=1)
    await c.send_text("1000000000001", "hai")
    assert zalo.refreshes == 1
    # 2. Expired (24.9 h later, inside the margin): refreshed before the message, not after a refusal.
    clock.now = T0 + timedelta(seconds=90000 - 60)
    await c.send_text("1000000000001", "ba")
    assert zalo.refreshes == 2 and zalo.rejected_messages == 0
    await c.close()

    # 3. A restart: a new service object, the environment still holds the first (used) refresh
    # token; Zalo then refuses the access token (-216): one refresh with the STORED refresh token.
    zalo.expire_access_token()
    c2 = client(db, cfg, clock)
    await c2.send_text("1000000000001", "bốn")
    assert zalo.rejected_messages == 1 and zalo.refreshes == 3 and zalo.refused_refreshes == []
    assert zalo.texts_to("1000000000001")[-1] == "bốn"
    assert stored(db).refresh_token == zalo.refresh_token and stored(db).version == 3
    await c2.close()
    # Nothing the server issued (nor the secret key) is in the log.
    for secret in [*zalo.issued, SECRET_KEY]:
        assert secret not in caplog.text
    assert "access token refreshed" in caplog.text


async def test_two_replicas_refresh_once(db: Database, zalo: ZaloOaServer, tmp_path: Path) -> None:
    cfg, clock = settings(tmp_path, zalo), Clock()
    a, b = client(db, cfg, clock, "replica-a"), client(db, cfg, clock, "replica-b")
    await asyncio.gather(*(c.send_text(f"10000000000{i:02d}", f"tin {i}") for i in range(6) for c in (a, b)))
    assert zalo.refreshes == 1 and zalo.refused_refreshes == [] and len(zalo.messages) == 12
    # Both see the rejection of the same token: still one refresh between them.
    zalo.expire_access_token()
    await asyncio.gather(a.send_text("1000000000001", "x"), b.send_text("1000000000002", "y"))
    assert zalo.refreshes == 2 and zalo.refused_refreshes == [] and len(zalo.messages) == 14
    await a.close()
    await b.close()


async def test_a_refused_refresh_token_fails_clearly_and_a_new_one_restarts_the_chain(
    db: Database, zalo: ZaloOaServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    bad = client(db, settings(tmp_path, zalo, refresh="rt-typo"), clock)
    with pytest.raises(ZaloFailed, match="token refresh refused"):
        await bad.send_text("1000000000001", "không đi")
    assert "needs a new COMMUNECAST_ZALO_OA_REFRESH_TOKEN" in caplog.text and zalo.messages == []
    await bad.close()
    # The operator sets the right one: a new chain from it, the message goes.
    good = client(db, settings(tmp_path, zalo), clock)
    await good.send_text("1000000000001", "đi")
    assert zalo.texts_to("1000000000001") == ["đi"] and "rt-typo" not in caplog.text
    await good.close()
