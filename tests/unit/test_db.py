"""Database layer on SQLite and PostgreSQL: migrations match the models; ingest stores
each event once and never lets a late 'playing' overwrite a proof of play."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from controller.db.models import Area, Broadcast, Delivery, Device, DeviceEvent, PlayLog
from controller.db.registry import metadata
from controller.db.session import Database
from controller.services.ingest import Ingest
from protocol import topics
from protocol.messages import Event, EventKind


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    db.migrate()  # idempotent
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def _event(kind: EventKind, item: str, **detail: float) -> tuple[str, bytes]:
    ev = Event(id=uuid.uuid4().hex, kind=kind, ts=datetime.now(UTC), item_id=item, detail=detail)
    return topics.events("spk-t"), ev.model_dump_json().encode()


def test_ingest_is_idempotent_and_final_status_wins(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    with db.session() as s:
        commune = Area(level="commune", name="Xã Hợp Hòa")
        s.add(commune)
        s.flush()
        device = Device(uid="spk-t", name="Cụm loa 1", kind="speaker", commune_id=commune.id,
                        tags=[], reported={})  # fmt: skip
        bc = Broadcast(title="b1", media=[], start_at=datetime.now(UTC), duration_s=5, targets={})
        s.add_all([device, bc])
        s.flush()  # proof of play is taken only for an item delivered to the station
        s.add(Delivery(broadcast_id=bc.id, device_id=device.id, item_id="b1", state="acked"))
    ingest = Ingest(db)
    now = datetime.now(UTC).timestamp()
    started = _event(EventKind.PLAY_STARTED, "b1", started_at=now)
    finished = _event(EventKind.PLAY_FINISHED, "b1", started_at=now, finished_at=now + 2)
    parsed = [ingest.parse(*m) for m in (started, finished, finished)]  # QoS 1 duplicate
    ingest.store([p for p in parsed if p])
    late = ingest.parse(*_event(EventKind.PLAY_STARTED, "b1", started_at=now))  # out of order
    ingest.store([late])  # type: ignore[list-item]
    assert ingest.parse("cc/v1/dev/spk-t/evt", b'{"kind": "nonsense"}') is None
    assert ingest.parse("somewhere/else", b"{}") is None
    with db.session() as s:
        rows = list(s.scalars(select(PlayLog)))
        assert [(r.item_id, r.status) for r in rows] == [("b1", "played")]
        assert s.scalar(select(func.count()).select_from(DeviceEvent)) == 3
    assert ingest.stats.duplicates == 1 and ingest.stats.rejected == 2
    db.dispose()
