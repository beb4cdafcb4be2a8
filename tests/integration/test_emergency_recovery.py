"""Issue 21, item 1: the emergency POST answers before the per-station rows exist, so a
controller killed in between must not leave a silent gap. `emergency.recover_deliveries`
(run every few seconds by the leader) writes the Delivery rows of an answered emergency that
has none and sends its stations' desired state again, which carries the broadcast (a station
that missed the group PLAY still plays it or reports `missed`). Found by `communecast bench
chaos` on PostgreSQL: two stations partitioned during an emergency, controller killed, no
Delivery rows, so nothing ever told them. Real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from controller.db.models import Area, Broadcast, Delivery, Device, DeviceEvent
from controller.db.models_dispatch import DispatchQueue
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.session import Database
from controller.services import emergency
from controller.services.targets import Targets


@pytest.fixture
def db_with_stations(database_url: str) -> Iterator[tuple[Database, int, list[int]]]:
    db = Database(database_url)
    db.migrate()
    with db.session() as s:
        here, there = Area(level="commune", name="Xã Tam Dương"), Area(level="commune", name="Xã Hợp Lý")
        s.add_all([here, there])
        s.flush()
        mine = [Device(uid=f"spk-td{i}", name=f"Cụm loa {i}", kind="speaker", commune_id=here.id, tags=[])
                for i in range(3)]  # fmt: skip
        s.add_all([*mine, Device(uid="spk-hl", name="Cụm loa Hợp Lý", kind="speaker", commune_id=there.id,
                                 tags=[])])  # fmt: skip
        s.commit()
        ids = sorted(d.id for d in mine)
        commune = here.id
    try:
        yield db, commune, ids
    finally:
        db.dispose()


def _emergency(db: Database, commune: int, *, asked_ago: timedelta, status: str = "active") -> int:
    now = datetime.now(UTC)
    with db.session() as s:
        bc = Broadcast(title="Khẩn cấp: lũ quét", status="scheduled", media=["d" * 64], priority="emergency",
                       start_at=now + timedelta(seconds=30), duration_s=20.0,
                       targets={"communes": [commune]})  # fmt: skip
        s.add(bc)
        s.flush()
        s.add(EmergencyBroadcast(broadcast_id=bc.id, lead_ms=1500.0, requested_at=now - asked_ago,
                                 status=status, topics=[f"cc/v1/grp/commune/{commune}/cmd"]))  # fmt: skip
        s.commit()
        return bc.id


def _rows(db: Database, bc_id: int) -> list[tuple[int, str]]:
    with db.session() as s:
        q = select(Delivery.device_id, Delivery.state).where(Delivery.broadcast_id == bc_id)
        return sorted((d, str(state)) for d, state in s.execute(q))


def _queued(db: Database) -> set[int]:
    with db.session() as s:
        return set(s.scalars(select(DispatchQueue.device_id)))


def test_an_answered_emergency_without_station_rows_gets_them_and_its_stations_are_told_again(
    db_with_stations: tuple[Database, int, list[int]],
) -> None:
    db, commune, ids = db_with_stations
    lost = _emergency(db, commune, asked_ago=timedelta(minutes=1))  # answered, then the controller died
    fresh = _emergency(db, commune, asked_ago=timedelta(0))  # its own answer is still writing them
    cancelled = _emergency(db, commune, asked_ago=timedelta(minutes=1), status="cancelled")
    assert emergency.recover_deliveries(db) == 1
    assert _rows(db, lost) == [(i, "pending") for i in ids]  # exactly the targeted commune's stations
    assert _queued(db) >= set(ids)  # their desired state, carrying the broadcast, goes out again
    assert _rows(db, fresh) == [] and _rows(db, cancelled) == []
    assert emergency.recover_deliveries(db) == 0  # once only


def test_a_station_that_could_not_read_the_play_before_its_row_existed_is_told_again(
    db_with_stations: tuple[Database, int, list[int]],
) -> None:
    """Audio inside the PLAY (docs/emergency.md): an agent older than the field refuses the PLAY
    as `malformed`; the ingest sends that station its desired state, which carries the emergency
    only once its Delivery row exists. A refusal stored before the rows: told again after them."""
    db, commune, (old, expired, other) = db_with_stations
    bc_id = _emergency(db, commune, asked_ago=timedelta(0))
    sent_at = datetime.now(UTC)
    topic = f"cc/v1/grp/commune/{commune}/cmd"
    with db.session() as s:
        for i, (device, reason, on) in enumerate([(old, "malformed", topic), (expired, "expired", topic),
                                                  (other, "malformed", "cc/v1/dev/spk-td2/desired")]):
            body = {"id": f"evt-rej-{i:04d}", "kind": "rejected", "reason": reason,
                    "detail": {"topic": on, "message": "Extra inputs are not permitted"}}
            s.add(DeviceEvent(id=body["id"], device_id=device, kind="rejected", ts=sent_at, ref=None,
                              item_id=None, body=body))
        fan = emergency.plan(s, Targets(communes=[commune]))
        s.commit()
    emergency._after_publish(db, bc_id, f"b{bc_id}", fan, sent_at, 5.0, 9.0, inline=True)
    assert _rows(db, bc_id) == [(i, "pending") for i in (old, expired, other)]
    assert _queued(db) == {old}  # its desired state now carries the emergency, by reference
