"""/metrics speaks the Prometheus text format and its values follow the database and the
process (stations online 0 -> 1, alarms open, messages counted). Without a token only
loopback clients are served; with one, only bearers of it. The whole running system's
metrics (dispatch latency after a broadcast, the alarm gauge during a fault) are checked in
tests/system/test_alarms_e2e.py, which already runs one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from controller.app import create_app
from controller.core.config import Settings
from controller.db.models import Area, Device
from controller.db.models_health import Alarm
from controller.db.session import Database
from controller.services import metrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}  # fmt: skip


def scrape_response(r: httpx.Response) -> Samples:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def test_metrics_follow_database_and_process(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    db.migrate()
    with db.session() as s:
        commune = Area(level="commune", name="Xã Hợp Hòa")
        s.add(commune)
        s.flush()
        s.add(Device(uid="spk-m1", name="Cụm loa 1", kind="speaker", commune_id=commune.id, tags=[],
                     reported={}))
    settings = Settings(data_dir=tmp_path, metrics_token="prom-token")
    app = create_app(settings)
    app.state.runtime = SimpleNamespace(settings=settings, db=db)
    metrics.attach_database(db)
    http = TestClient(app, headers={"Authorization": "Bearer prom-token"})
    try:
        before = scrape_response(http.get("/metrics"))
        assert before[("communecast_stations_online", ())] == 0
        assert before[("communecast_stations", (("kind", "speaker"), ("status", "offline")))] == 1
        for name in ("communecast_dispatch_latency_seconds_count", "communecast_ingest_batch_seconds_count"):
            assert (name, ()) in before
        tele = ("communecast_messages_ingested_total", (("channel", "tele"),))

        with db.session() as s:
            device = s.scalar(select(Device))
            device.online = True
            s.add(Alarm(device_id=device.id, kind="overheating", state="open",
                        active_key=f"{device.id}:overheating", opened_at=datetime.now(UTC), detail={}))
        metrics.count_channels(["tele", "tele", "evt"])
        after = scrape_response(http.get("/metrics"))
        assert after[("communecast_stations_online", ())] == 1
        assert after[("communecast_alarms_open", (("kind", "overheating"), ("state", "open")))] == 1
        assert after[tele] == before.get(tele, 0) + 2
    finally:
        db.dispose()


def test_metrics_access(tmp_path: Path) -> None:
    for token, headers, status in [(None, {}, 403), ("s3cret", {}, 401),
                                   ("s3cret", {"Authorization": "Bearer wrong"}, 401),
                                   ("s3cret", {"Authorization": "Bearer s3cret"}, 200)]:  # fmt: skip
        settings = Settings(data_dir=tmp_path, metrics_token=token)
        app = create_app(settings)
        app.state.runtime = SimpleNamespace(settings=settings)
        # TestClient's peer is "testclient", not a loopback address.
        assert TestClient(app).get("/metrics", headers=headers).status_code == status, (token, headers)
