"""Ingest's batch write (controller/services/ingest.py) on SQLite and PostgreSQL: an event
stored by another replica meanwhile is a counted duplicate, not a failed batch; state and
telemetry are merged per station in arrival order; every telemetry sample is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from controller.db.models import Area, Device, DeviceEvent, PlayLog
from controller.db.models_health import TelemetrySample
from controller.db.session import Database
from controller.services.ingest import Ingest
from protocol import topics
from protocol.messages import Event, EventKind, ReportedState, Telemetry


def _seed(db: Database) -> int:
    with db.session() as s:
        commune = Area(level="commune", name="Xã Hợp Hòa")
        s.add(commune)
        s.flush()
        dev = Device(uid="spk-b", name="Cụm loa B", kind="speaker", commune_id=commune.id, tags=[],
                     reported={"agent_version": "1.0"})  # fmt: skip
        s.add(dev)
        s.flush()
        return dev.id


def test_batch_write_dedupes_across_replicas_and_coalesces_state(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    dev = _seed(db)
    now = datetime.now(UTC)
    ev = Event(id="evt-batch-0001", kind=EventKind.PLAY_FINISHED, ts=now, item_id="b9",
               detail={"started_at": now.timestamp(), "finished_at": now.timestamp() + 3})  # fmt: skip
    msg = (topics.events("spk-b"), ev.model_dump_json().encode())
    a, b = Ingest(db), Ingest(db)  # two replicas: neither has seen the other's batch
    a._store([a._parse(*msg)])  # type: ignore[list-item]
    b._store([b._parse(*msg)])  # type: ignore[list-item]
    assert a.stats.stored_events == 1 and a.stats.by_kind == {"play_finished": 1}
    # PostgreSQL: skipped by the insert itself (ON CONFLICT), so a race is not a failed batch.
    assert b.stats.stored_events == 0 and b.stats.duplicates == 1 and b.stats.by_kind == {}

    tele = [Telemetry(ts=now + timedelta(seconds=i), mains_v=220.0 + i) for i in range(3)]
    batch = [
        (topics.state("spk-b"), ReportedState(online=True, agent_version="1.2").model_dump_json().encode()),
        *[(topics.telemetry("spk-b"), t.model_dump_json().encode()) for t in tele],
        (topics.state("spk-b"), ReportedState(online=False, playing="b9").model_dump_json().encode()),
    ]
    a._store([p for p in (a._parse(*m) for m in batch) if p])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(DeviceEvent)) == 1
        assert [(r.item_id, r.status) for r in s.scalars(select(PlayLog))] == [("b9", "played")]
        assert s.scalar(select(func.count()).select_from(TelemetrySample)) == 3
        device = s.get(Device, dev)
        assert device is not None and device.online is False and device.last_seen is not None
        assert device.reported["agent_version"] == "1.2" and device.reported["playing"] == "b9"
        assert device.reported["telemetry"]["mains_v"] == 222.0  # the newest one
    db.dispose()
