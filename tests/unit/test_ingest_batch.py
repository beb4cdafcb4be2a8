"""Ingest's batch write (controller/services/ingest.py) on SQLite and PostgreSQL: an event
stored by another replica meanwhile is a counted duplicate, not a failed batch; state and
telemetry are merged per station in arrival order; every telemetry sample is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from controller.db.models import Area, Broadcast, Delivery, Device, DeviceEvent, PlayLog
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


def _deliver(db: Database, device_id: int, *items: str) -> None:
    """Proof of play is taken only for items delivered to the station (docs/security.md)."""
    with db.session() as s:
        for item in items:
            bc = Broadcast(title=item, media=[], start_at=datetime.now(UTC), duration_s=5, targets={})
            s.add(bc)
            s.flush()
            s.add(Delivery(broadcast_id=bc.id, device_id=device_id, item_id=item, state="acked"))


def test_batch_write_dedupes_across_replicas_and_coalesces_state(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    dev = _seed(db)
    _deliver(db, dev, "b9")
    now = datetime.now(UTC)
    ev = Event(id="evt-batch-0001", kind=EventKind.PLAY_FINISHED, ts=now, item_id="b9",
               detail={"started_at": now.timestamp(), "finished_at": now.timestamp() + 3})  # fmt: skip
    msg = (topics.events("spk-b"), ev.model_dump_json().encode())
    a, b = Ingest(db), Ingest(db)  # two replicas: neither has seen the other's batch
    a.store([a.parse(*msg)])  # type: ignore[list-item]
    b.store([b.parse(*msg)])  # type: ignore[list-item]
    assert a.stats.stored_events == 1 and a.stats.by_kind == {"play_finished": 1}
    # PostgreSQL: skipped by the insert itself (ON CONFLICT), so a race is not a failed batch.
    assert b.stats.stored_events == 0 and b.stats.duplicates == 1 and b.stats.by_kind == {}

    tele = [Telemetry(ts=now + timedelta(seconds=i), mains_v=220.0 + i) for i in range(3)]
    batch = [
        (topics.state("spk-b"), ReportedState(online=True, agent_version="1.2").model_dump_json().encode()),
        *[(topics.telemetry("spk-b"), t.model_dump_json().encode()) for t in tele],
        (topics.state("spk-b"), ReportedState(online=False, playing="b9").model_dump_json().encode()),
    ]
    a.store([p for p in (a.parse(*m) for m in batch) if p])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(DeviceEvent)) == 1
        assert [(r.item_id, r.status) for r in s.scalars(select(PlayLog))] == [("b9", "played")]
        assert s.scalar(select(func.count()).select_from(TelemetrySample)) == 3
        device = s.get(Device, dev)
        assert device is not None and device.online is False and device.last_seen is not None
        assert device.reported["agent_version"] == "1.2" and device.reported["playing"] == "b9"
        assert device.reported["telemetry"]["mains_v"] == 222.0  # the newest one
    db.dispose()


def test_acks_mark_their_deliveries_once_with_the_first_ack_time(database_url: str) -> None:
    """One batch of acks (the burst after an emergency): each names its station's delivery;
    a repeated ack keeps the first time, an already acked delivery keeps its time, another
    broadcast's delivery on the same station and a rejected one are told apart."""
    db = Database(database_url)
    db.migrate()
    dev = _seed(db)
    t0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    with db.session() as s:
        commune_id = s.get(Device, dev).commune_id  # type: ignore[union-attr]
        other = Device(uid="spk-c", name="Cụm loa C", kind="speaker", commune_id=commune_id, tags=[])
        s.add(other)
        s.flush()
        bcs = [Broadcast(title=f"b{i}", media=[], priority="emergency", start_at=t0, duration_s=5, targets={})
               for i in range(3)]  # fmt: skip
        s.add_all(bcs)
        s.flush()
        s.add_all([
            Delivery(broadcast_id=bcs[0].id, device_id=dev, item_id="em-1", state="pending"),
            Delivery(broadcast_id=bcs[0].id, device_id=other.id, item_id="em-1", state="pending"),
            Delivery(broadcast_id=bcs[1].id, device_id=dev, item_id="em-2", state="acked", acked_at=t0),
            Delivery(broadcast_id=bcs[2].id, device_id=dev, item_id="em-3", state="pending"),
        ])  # fmt: skip
        other_uid = other.uid

    def ack(n: int, uid: str, item: str, at: datetime, kind: EventKind = EventKind.ACK) -> tuple[str, bytes]:
        ev = Event(id=f"evt-ack-{n}", kind=kind, ts=at, ref=f"cmd-{n}", item_id=item,
                   reason="bad_signature" if kind is EventKind.REJECTED else None, detail={"items": [item]})
        return topics.events(uid), ev.model_dump_json().encode()

    ingest = Ingest(db)
    batch = [
        ack(1, "spk-b", "em-1", t0 + timedelta(seconds=2)),
        ack(2, "spk-b", "em-1", t0 + timedelta(seconds=1)),  # a repeat, stamped earlier
        ack(3, other_uid, "em-1", t0 + timedelta(seconds=3)),
        ack(4, "spk-b", "em-2", t0 + timedelta(seconds=9)),  # acked before this batch
        ack(5, "spk-b", "em-3", t0 + timedelta(seconds=4), EventKind.REJECTED),
    ]
    ingest.store([p for p in (ingest.parse(*m) for m in batch) if p])
    with db.session() as s:
        got = {(d.device_id, d.item_id): (d.state, d.acked_at, d.detail) for d in s.scalars(select(Delivery))}
        other_id = s.scalar(select(Device.id).where(Device.uid == other_uid))
    assert got == {
        (dev, "em-1"): ("acked", t0 + timedelta(seconds=1), None),
        (other_id, "em-1"): ("acked", t0 + timedelta(seconds=3), None),
        (dev, "em-2"): ("acked", t0, None),
        (dev, "em-3"): ("rejected", None, "bad_signature"),
    }
    assert ingest.stats.stored_events == 5
    db.dispose()


def test_proof_of_play_folds_a_batch_and_never_goes_back_from_a_final_status(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    dev = _seed(db)
    _deliver(db, dev, "i1", "i2", "i3")
    t0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC).timestamp()

    def ev(n: int, kind: EventKind, item: str, **detail: float) -> tuple[str, bytes]:
        e = Event(id=f"evt-pl-{n}", kind=kind, ts=datetime.now(UTC), item_id=item,
                  reason="horn busy past the start" if kind is EventKind.MISSED else None, detail=detail)
        return topics.events("spk-b"), e.model_dump_json().encode()

    ingest = Ingest(db)
    first = [
        ev(1, EventKind.PLAY_STARTED, "i1", started_at=t0),
        ev(2, EventKind.PLAY_FINISHED, "i1", started_at=t0, finished_at=t0 + 30, start_error_ms=2.5),
        ev(3, EventKind.PLAY_STARTED, "i1", started_at=t0 + 1),  # late and out of order: ignored
        ev(4, EventKind.MISSED, "i2"),  # the controller's or the station's "missed" ...
        ev(5, EventKind.PLAY_STARTED, "i3", started_at=t0 + 60),
    ]
    ingest.store([p for p in (ingest.parse(*m) for m in first) if p])
    second = [
        ev(6, EventKind.PLAY_FINISHED, "i2", started_at=t0 + 5, finished_at=t0 + 35),  # ... corrected
        ev(7, EventKind.PLAY_FINISHED, "i3", finished_at=t0 + 90),  # started_at stays from batch one
    ]
    ingest.store([p for p in (ingest.parse(*m) for m in second) if p])
    with db.session() as s:
        rows = {r.item_id: r for r in s.scalars(select(PlayLog).where(PlayLog.device_id == dev))}

    def at(offset: float) -> datetime:
        return datetime.fromtimestamp(t0 + offset, UTC)

    assert {i: r.status for i, r in rows.items()} == {"i1": "played", "i2": "played", "i3": "played"}
    assert (rows["i1"].started_at, rows["i1"].finished_at, rows["i1"].start_error_ms) == (at(0), at(30), 2.5)
    assert (rows["i2"].started_at, rows["i2"].reason) == (at(5), "horn busy past the start")
    assert (rows["i3"].started_at, rows["i3"].finished_at) == (at(60), at(90))
    assert ingest.stats.stored_events == 7
    db.dispose()
