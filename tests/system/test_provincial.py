"""Issue 6 item 8: the provincial reporting connector (CV 1273) against a simulated province.

The province is a real HTTP server (communecast/provincial_sim.py); play logs enter through
the real ingest path; the outbox lives in SQLite and PostgreSQL where storage matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import select

from communecast.provincial_sim import ProvincialSim
from controller.core.i18n import t
from controller.db.models import Area, Broadcast, Delivery, Device
from controller.db.session import Database
from controller.services.ingest import Ingest
from controller.services.provincial import outbox
from controller.services.provincial.config import ProvincialSettings
from controller.services.provincial.connector import ProvincialConnector
from protocol import topics
from protocol.messages import Event, EventKind
from testkit.api import Api
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone

USER = "xa-hop-hoa"


@pytest.fixture
async def sim() -> AsyncIterator[ProvincialSim]:
    province = ProvincialSim(username=USER, password=secrets.token_urlsafe(10))
    await province.start()
    try:
        yield province
    finally:
        await province.stop()


def settings_for(sim: ProvincialSim, **overrides: Any) -> ProvincialSettings:
    values: dict[str, Any] = {
        "base_url": sim.url, "username": USER, "password": SecretStr(sim.password), "interval_s": 0.3,
        "poll_s": 0.05, "batch_size": 10, "backoff_base_s": 0.05, "backoff_max_s": 0.3, "token_margin_s": 0.5,
    }  # fmt: skip
    return ProvincialSettings(**{**values, **overrides})


class Commune:
    """A database with one commune, one speaker with telemetry and a few broadcasts, and ingest."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.db.migrate()
        with self.db.session() as s:
            commune = Area(level="commune", name="Xã Hợp Hòa", code="09112")
            s.add(commune)
            s.flush()
            s.add(Device(uid="loa-hh-01", name="Cụm loa thôn Đồng Bùa", kind="speaker", commune_id=commune.id,
                         lat=21.3702, lon=105.5021, online=True, tags=[], reported={
                             "online": True, "telemetry": {
                                 "volume": 70, "mains_v": 226.4, "cabinet_temp_c": 38.5,
                                 "extra": {"imei": "860123456789012", "connection_type": "4G",
                                           "signal_dbm": -71}}}))  # fmt: skip
            now = datetime.now(UTC)
            s.add(Broadcast(id=7, title="Thông báo lịch tiêm chủng", media=[], priority="normal",
                            start_at=now, duration_s=42.0, targets={"all": True}))
        self.ingest = Ingest(self.db, play_log_hook=outbox.enqueue_play_logs)
        self._task = asyncio.create_task(self.ingest.run())

    async def played(self, item: str, *, broadcast_id: int | None = 7) -> None:
        """A station's proof of play for one item, as it arrives over MQTT."""
        self._deliver(item)
        start = datetime.now(UTC).timestamp() - 42
        for kind, detail in ((EventKind.PLAY_STARTED, {"started_at": start}),
                             (EventKind.PLAY_FINISHED, {"started_at": start, "finished_at": start + 41.5})):
            ev = Event(id=uuid.uuid4().hex, kind=kind, ts=datetime.now(UTC), item_id=item,
                       broadcast_id=broadcast_id, detail=detail)
            await self.ingest.handle(topics.events("loa-hh-01"), ev.model_dump_json().encode())

    def _deliver(self, item: str) -> None:
        """Proof of play is taken only for items delivered to the station (docs/security.md)."""
        with self.db.session() as s:
            device = s.scalars(select(Device).where(Device.uid == "loa-hh-01")).one()
            if s.scalars(select(Delivery).where(Delivery.item_id == item)).first() is None:
                n = len(s.scalars(select(Delivery.id)).all())  # explicit ids: 7 is taken explicitly too
                bc = Broadcast(id=1000 + n, title=item, media=[], start_at=datetime.now(UTC), duration_s=42.0,
                               targets={})  # fmt: skip
                s.add(bc)
                s.flush()
                s.add(Delivery(broadcast_id=bc.id, device_id=device.id, item_id=item, state="acked"))

    def depth(self) -> dict[str, Any]:
        with self.db.session() as s:
            return outbox.depth(s)

    def state(self) -> dict[str, Any]:
        with self.db.session() as s:
            st = outbox.state(s)
            return {} if st is None else {"error": st.last_error_key, "success": st.last_success_at,
                                          "logins": st.logins, "delivered": st.delivered_play_log}

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.db.dispose()


@contextlib.asynccontextmanager
async def running(connector: ProvincialConnector) -> AsyncIterator[ProvincialConnector]:
    task = asyncio.create_task(connector.run())
    try:
        yield connector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _async(value: Any) -> Any:
    return value


def test_mapping_is_configurable_and_always_carries_the_key() -> None:
    s = ProvincialSettings(play_log_fields={"ma_ban_tin": "bulletin_id"})
    assert s.play_log_fields == {"ma_ban_tin": "bulletin_id", "maDinhDanh": "idempotency_key"}
    with pytest.raises(ValidationError, match="unknown source fields"):
        ProvincialSettings(status_fields={"x": "no_such_field"})


async def test_status_and_play_logs_arrive_with_mapped_fields(
    sim: ProvincialSim, database_url: str
) -> None:
    commune = Commune(database_url)
    leader = ProvincialConnector(commune.db, settings_for(sim), is_leader=lambda: True)
    standby = ProvincialConnector(commune.db, settings_for(sim), is_leader=lambda: False)
    try:
        async with running(leader), running(standby):
            await commune.played("b7")
            await eventually(lambda: _async(sim.received), lambda r: r.play_logs and r.status,
                             timeout=10, what="a play log and a status at the province")
            await eventually(lambda: _async(commune.depth()), lambda d: d["play_log"] == 0, timeout=5,
                             what="the outbox emptied")
    finally:
        await commune.close()
    (log,) = sim.received.play_logs.values()
    assert log["maThietBi"] == "loa-hh-01" and log["maBanTin"] == "b7" and log["loaiBanTin"] == "broadcast"
    assert log["tieuDe"] == "Thông báo lịch tiêm chủng" and log["mucDoUuTien"] == "normal"
    assert log["trangThai"] == "played" and log["thoiLuong"] == 41.5 and log["laTiepSong"] is False
    assert log["amLuong"] == 70 and log["maDinhDanh"] == "pl:loa-hh-01:b7:played"
    assert log["maXa"] == "09112"  # the commune's official code (docs/areas.md)
    assert datetime.fromisoformat(log["thoiGianBatDau"]).utcoffset() == timedelta(0)
    status = next(iter(sim.received.status.values()))
    assert status["maThietBi"] == "loa-hh-01" and status["tenThietBi"] == "Cụm loa thôn Đồng Bùa"
    assert status["imei"] == "860123456789012" and status["kieuKetNoi"] == "4G"
    assert status["cuongDoTinHieu"] == -71 and status["trangThaiHoatDong"] == "idle"
    assert (status["viDo"], status["kinhDo"]) == (21.3702, 105.5021)
    assert status["nguonDien"] == "mains" and status["nhietDo"] == 38.5 and status["amLuong"] == 70
    assert status["maXa"] == "09112"
    # Only the lease holder sends: the standby replica never even logged in.
    assert standby.client.logins == 0 and sim.received.duplicates == 0


async def test_outage_loses_nothing_and_delivers_each_record_once(
    sim: ProvincialSim, database_url: str
) -> None:
    commune = Commune(database_url)
    connector = ProvincialConnector(commune.db, settings_for(sim, interval_s=3600), is_leader=lambda: True)
    try:
        async with running(connector):
            await sim.go_down("503")
            for i in range(20):
                await commune.played(f"s1@202611260{i:02d}000Z", broadcast_id=None)
            await eventually(lambda: _async(commune.depth()), lambda d: d["play_log"] == 20, timeout=10,
                             what="20 play logs queued while the province answers 503")
            await eventually(lambda: _async(commune.state()),
                             lambda st: st.get("error") == "provincial.rejected", timeout=5,
                             what="the 503 recorded")
            await sim.go_down("refused")
            for i in range(20, 30):
                await commune.played(f"s1@202611260{i:02d}000Z", broadcast_id=None)
            await eventually(lambda: _async(commune.state()),
                             lambda st: st.get("error") == "provincial.unreachable", timeout=5,
                             what="connection refused recorded")
            await eventually(lambda: _async(commune.depth()), lambda d: d["play_log"] == 30, timeout=10,
                             what="30 play logs queued")
            assert not sim.received.play_logs
            # Back, but the first replies get lost: the province stores, the connector resends.
            sim.lose_replies = True
            await sim.come_back()
            await eventually(lambda: _async(sim.received), lambda r: len(r.play_logs) >= 10, timeout=10,
                             what="a batch stored whose reply was lost")
            sim.lose_replies = False
            await eventually(lambda: _async(commune.depth()), lambda d: d["play_log"] == 0, timeout=15,
                             what="the whole backlog delivered")
    finally:
        await commune.close()
    expected = {f"pl:loa-hh-01:s1@202611260{i:02d}000Z:played" for i in range(30)}
    assert set(sim.received.play_logs) == expected  # nothing lost, nothing extra
    assert sim.received.duplicates >= 10  # resent after the lost reply, dropped by key at the province
    assert all(r["loaiBanTin"] == "other" for r in sim.received.play_logs.values())


async def test_expired_token_means_a_new_login(sim: ProvincialSim, tmp_path: Path) -> None:
    commune = Commune(f"sqlite:///{tmp_path / 'c.db'}")
    settings = settings_for(sim, interval_s=0.2, token_margin_s=0.8)
    connector = ProvincialConnector(commune.db, settings, is_leader=lambda: True)
    try:
        async with running(connector):
            await eventually(lambda: _async(sim.received), lambda r: r.status, timeout=10,
                             what="first status")
            assert sim.received.logins == 1
            sim.expire_tokens()  # revoked early: the connector learns it from a 401
            await commune.played("b7")
            await eventually(lambda: _async(sim.received), lambda r: r.play_logs, timeout=10,
                             what="the play log after a new login")
            assert sim.received.logins == 2 and sim.received.unauthorized == 1
            # Short-lived tokens: renewed from expires_in before they run out, without a 401.
            sim.token_ttl_s = 1.6  # renewed 0.8 s before: a request may be 0.8 s late before a 401
            sim.expire_tokens()
            await eventually(lambda: _async(sim.received), lambda r: r.logins >= 5, timeout=10,
                             what="logins driven by expires_in")
            assert sim.received.unauthorized == 2
            await eventually(lambda: _async(commune.state()), lambda st: st.get("logins", 0) >= 4, timeout=5,
                             what="logins counted in the status")
    finally:
        await commune.close()


async def test_wrong_password_is_reported_and_nothing_is_dropped(sim: ProvincialSim, tmp_path: Path) -> None:
    secret = tmp_path / "provincial-password"
    secret.write_text("not-the-password\n")
    commune = Commune(f"sqlite:///{tmp_path / 'c.db'}")
    settings = settings_for(sim, password=None, password_file=secret, interval_s=3600)
    connector = ProvincialConnector(commune.db, settings, is_leader=lambda: True)
    try:
        async with running(connector):
            for item in ("b7", "s3@20261126T223000Z", "s3@20261127T223000Z"):
                await commune.played(item)
            st = await eventually(lambda: _async(commune.state()),
                                  lambda st: st.get("error") == "provincial.login_failed", timeout=10,
                                  what="the login failure recorded")
            assert st["success"] is None and sim.received.failed_logins >= 1
            # ingest stores the plays in its own batch task: all three reach the outbox, none is dropped
            await eventually(lambda: _async(commune.depth()), lambda d: d["play_log"] == 3, timeout=10,
                             what="the three plays queued for the province while its login fails")
            message = t("provincial.login_failed", "vi", username=USER, status=401)
            assert "từ chối đăng nhập" in message and "không mất bản ghi nào" in message
            secret.write_text(sim.password + "\n")  # the operator fixes the file; no restart
            await eventually(lambda: _async(commune.depth()), lambda d: d["total"] == 0, timeout=10,
                             what="the queue delivered after the fix")
    finally:
        await commune.close()
    assert len(sim.received.play_logs) == 3


async def test_a_real_bulletin_reaches_the_province(sim: ProvincialSim, tmp_path: Path) -> None:
    secret = tmp_path / "provincial-password"
    secret.write_text(sim.password)
    system = System(tmp_path / "system", f"sqlite:///{tmp_path / 'controller.db'}", controller_env={
        "COMMUNECAST_PROVINCIAL_BASE_URL": sim.url, "COMMUNECAST_PROVINCIAL_USERNAME": USER,
        "COMMUNECAST_PROVINCIAL_PASSWORD_FILE": str(secret), "COMMUNECAST_PROVINCIAL_INTERVAL_S": "1",
        "COMMUNECAST_PROVINCIAL_POLL_S": "0.1",
    })  # fmt: skip
    try:
        await system.start()
        (station,) = await system.add_stations(1)
        media = await Api.of(system).upload(tone(tmp_path / "bulletin.wav", seconds=1.5))
        start_at = datetime.now(UTC) + timedelta(seconds=3)
        bc = await system.api_json("POST", "/api/v1/broadcasts", json={
            "title": "Lịch cắt điện tuần này", "media_sha256": media["sha256"], "targets": {"all": True},
            "start_at": start_at.isoformat()})  # fmt: skip
        await station.sink.wait_for(lambda p: True, timeout=15)
        await eventually(lambda: _async(sim.received.play_logs), lambda logs: any(
            r["maBanTin"] == f"b{bc['id']}" and r["trangThai"] == "played" for r in logs.values()),
            timeout=15, what="the play log at the province")  # fmt: skip
        (log,) = sim.received.play_logs.values()
        assert log["tieuDe"] == "Lịch cắt điện tuần này" and log["maThietBi"] == station.uid
        assert any(r["maThietBi"] == station.uid for r in sim.received.status.values())
        status = await eventually(lambda: system.api_json("GET", "/api/v1/provincial/status"),
                                  lambda st: st["queue"]["play_log"] == 0
                                  and st["delivered"]["play_log"] >= 1,
                                  timeout=10, what="the status page")
        assert status["enabled"] and status["healthy"] and status["this_replica_sends"]
        assert status["last_error"] is None and status["logins"] >= 1
    finally:
        await system.stop()
