"""Telemetry as a time series on SQLite and PostgreSQL: ingest stores each sample, the rollup
job turns finished 5-minute buckets into min/avg/max (idempotently), retention prunes, and the
HTTP query picks raw samples or rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from controller.app import create_app
from controller.core.config import Settings
from controller.core.security import new_token, token_digest
from controller.db.models import ApiToken, Area, Device
from controller.db.models_health import TelemetryRollup, TelemetrySample
from controller.db.session import Database
from controller.services import seed, telemetry
from controller.services.ingest import Ingest
from protocol import topics
from protocol.messages import Telemetry

T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # a bucket boundary


@pytest.fixture
def db(db: Database) -> Database:
    """The shared migrated database (tests/conftest.py) with one commune and one station."""
    database = db
    with database.session() as s:
        commune = Area(level="commune", name="Xã Hợp Hòa")
        s.add(commune)
        s.flush()
        s.add(Device(uid="spk-h1", name="Cụm loa 1", kind="speaker", commune_id=commune.id, tags=[],
                     reported={}))
    return database


def _device_id(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(Device.id).where(Device.uid == "spk-h1")))


def _ingest(db: Database, samples: list[Telemetry]) -> None:
    ingest = Ingest(db)
    parsed = [ingest.parse(topics.telemetry("spk-h1"), t.model_dump_json().encode()) for t in samples]
    ingest.store([p for p in parsed if p])


def test_ingest_rollup_prune_and_query(db: Database) -> None:
    # Three buckets of mains voltage (one with a mains loss), every 60 s; NaN stays out.
    volts = [230.0, 231.0, 229.0, 230.0, 232.0, 0.0, 0.0, 12.0, 230.0, 230.0, 228.0, 226.0, 227.0, 229.0,
             231.0]  # fmt: skip
    samples = [Telemetry(ts=T0 + timedelta(seconds=60 * i), mains_v=v, relay_on=i % 2 == 0,
                         net_type="cellular", amp_current_a=float("nan"))
               for i, v in enumerate(volts)]  # fmt: skip
    _ingest(db, samples)
    dev = _device_id(db)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(TelemetrySample)) == 15
        assert s.scalar(select(func.count()).where(TelemetrySample.amp_current_a.is_not(None))) == 0
        reported = s.get(Device, dev).reported["telemetry"]  # current state per station
        assert reported["mains_v"] == 231.0 and reported["net_type"] == "cellular"

    # Nothing is rolled up while its bucket may still receive samples.
    with db.session() as s:
        assert telemetry.rollup(s, now=T0 + timedelta(minutes=5, seconds=30)).buckets == 0
        result = telemetry.rollup(s, now=T0 + timedelta(hours=1))
    assert result.buckets == 3
    with db.session() as s:
        first = telemetry.query(s, dev, "mains_v", T0, T0 + timedelta(minutes=15), "5m").points
        again = telemetry.rollup_bucket(s, T0 + timedelta(minutes=5))  # re-running a bucket rewrites it
        assert again == 2  # mains_v and relay_on
        assert telemetry.rollup(s, now=T0 + timedelta(hours=1)).buckets == 0  # nothing new
    with db.session() as s:
        assert telemetry.query(s, dev, "mains_v", T0, T0 + timedelta(minutes=15), "5m").points == first
        assert s.scalar(select(func.count()).select_from(TelemetryRollup)) == 6
    assert [(p["min"], p["max"], p["count"]) for p in first] == [(229.0, 232.0, 5), (0.0, 230.0, 5),
                                                                  (226.0, 231.0, 5)]  # fmt: skip
    assert first[1]["avg"] == pytest.approx((0 + 0 + 12 + 230 + 230) / 5)
    assert first[0]["ts"] == T0.isoformat()

    with db.session() as s:
        hourly = telemetry.query(s, dev, "mains_v", T0, T0 + timedelta(hours=1), "1h").points
        raw = telemetry.query(s, dev, "relay_on", T0, T0 + timedelta(minutes=3), "raw").points
    assert len(hourly) == 1 and hourly[0]["count"] == 15 and hourly[0]["min"] == 0.0
    assert hourly[0]["avg"] == pytest.approx(sum(volts) / 15, abs=1e-3)
    assert [p["value"] for p in raw] == [1.0, 0.0, 1.0]

    # Retention: raw samples past it go (they are rolled up), the rollups stay.
    with db.session() as s:
        telemetry.prune(s, raw_days=2, rollup_days=90, now=T0 + timedelta(days=3))
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(TelemetrySample)) == 0
        assert s.scalar(select(func.count()).select_from(TelemetryRollup)) == 6
        telemetry.prune(s, raw_days=2, rollup_days=90, now=T0 + timedelta(days=91))
        assert s.scalar(select(func.count()).select_from(TelemetryRollup)) == 0


def test_rollup_skips_empty_stretches(db: Database) -> None:
    """A station silent for a day: the job jumps the gap instead of crawling through it."""
    _ingest(db, [Telemetry(ts=T0, cabinet_temp_c=35.0),
                 Telemetry(ts=T0 + timedelta(days=1), cabinet_temp_c=41.0)])  # fmt: skip
    with db.session() as s:
        assert telemetry.rollup(s, now=T0 + timedelta(days=2)).buckets == 2
        rows = s.scalars(select(TelemetryRollup.max).order_by(TelemetryRollup.bucket_start)).all()
    assert rows == [35.0, 41.0]


def test_http_query_picks_raw_or_rollup_and_explains_bad_input(db: Database, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    _ingest(db, [Telemetry(ts=now - timedelta(minutes=30 - i), cabinet_temp_c=30.0 + i) for i in range(20)])
    with db.session() as s:
        telemetry.rollup(s, now=now)
        admin = seed.ensure_admin(s, "mật-khẩu-thử")
        token = new_token()
        s.add(ApiToken(token_hash=token_digest(token), user_id=admin.id, expires_at=now + timedelta(hours=1)))
    settings = Settings(data_dir=tmp_path, database_url=str(db.engine.url))
    app = create_app(settings)
    app.state.runtime = SimpleNamespace(settings=settings, db=db, notifications=None)
    http = TestClient(app)  # no lifespan: the runtime above is all these routes need
    dev = _device_id(db)
    auth = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/devices/{dev}/telemetry"

    r = http.get(url, params={"metric": "cabinet_temp_c"}, headers=auth)  # last 6 h, auto -> raw
    assert r.status_code == 200, r.text
    assert r.json()["step"] == "raw" and len(r.json()["points"]) == 20
    hour = {"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()}
    r = http.get(url, params={"metric": "cabinet_temp_c", "step": "5m", **hour}, headers=auth)
    assert r.status_code == 200 and r.json()["step"] == "5m"
    assert all(p["min"] <= p["avg"] <= p["max"] for p in r.json()["points"]) and r.json()["points"]
    r = http.get(url, params={"metric": "cabinet_temp_c", "from": (now - timedelta(days=30)).isoformat()},
                 headers=auth)  # fmt: skip
    assert r.json()["step"] == "1d"  # auto: a month is rollups

    r = http.get(url, params={"metric": "nhiet_do"}, headers=auth)
    assert r.status_code == 422 and "Chỉ số \u201cnhiet_do\u201d không có" in r.json()["detail"]
    r = http.get(url, params={"metric": "mains_v", "from": "2026-11-26T05:00:00"},
                 headers={**auth, "Accept-Language": "en"})  # fmt: skip
    assert r.status_code == 422 and "UTC offset" in r.json()["detail"]
    r = http.get(url, params={"metric": "mains_v", "step": "5m", "from": "2020-01-01T00:00:00+07:00"},
                 headers=auth)  # fmt: skip
    assert r.status_code == 422 and r.json()["code"] == "telemetry.too_many_points"
    assert http.get(url, params={"metric": "mains_v"}).status_code == 401
