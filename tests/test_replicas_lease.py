"""Issue 8: the dispatch lease and the durable queue, on SQLite and PostgreSQL.

What an operator would notice if these were wrong: two replicas both publishing (a
station's retained state going backwards), or a bulletin never dispatched because the
replica that queued it died or a mark arrived while a batch was being published.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.db.session import Database
from controller.services import dispatch


@pytest.fixture
def db(database_url: str):  # type: ignore[no-untyped-def]
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def test_one_holder_at_a_time_and_a_stale_holder_is_fenced_off(db: Database) -> None:
    ttl = timedelta(seconds=5)
    a, b = dispatch.Lease("replica-a", ttl), dispatch.Lease("replica-b", ttl)
    t0 = datetime.now(UTC)
    with db.session() as s:
        assert a.acquire_or_renew(s, t0)
    with db.session() as s:
        assert not b.acquire_or_renew(s, t0 + timedelta(seconds=1))
    with db.session() as s:
        assert a.acquire_or_renew(s, t0 + timedelta(seconds=2))  # renew
        a.fence(s, t0 + timedelta(seconds=2))
    first_epoch = a.epoch
    # a stops renewing (killed or paused): after the expiry b takes over with a new epoch
    with db.session() as s:
        assert b.acquire_or_renew(s, t0 + timedelta(seconds=8))
    assert b.epoch == (first_epoch or 0) + 1
    with pytest.raises(dispatch.LeaseLost), db.session() as s:
        a.fence(s, t0 + timedelta(seconds=8.5))  # its transaction must not commit
    with db.session() as s:
        assert not a.acquire_or_renew(s, t0 + timedelta(seconds=9))
        b.release(s)
    with db.session() as s:  # a clean shutdown hands over at once
        assert a.acquire_or_renew(s, t0 + timedelta(seconds=9.5))


def test_queue_survives_and_a_mark_made_during_a_drain_is_kept(db: Database) -> None:
    ids = [101, 102, 103]  # station ids (the queue only needs the numbers)
    with db.session() as s:
        dispatch.enqueue(s, [ids[0], ids[1], ids[0]])
        dispatch.enqueue(s, [ids[1]])
    with db.session() as s:
        assert dispatch.pending(s, max_devices=1).device_ids == [ids[0]]
        todo = dispatch.pending(s, max_devices=10)
    assert sorted(todo.device_ids) == sorted(ids[:2]) and len(todo.row_ids) == 3  # one build each
    with db.session() as s:  # marked again while the batch is being published
        dispatch.enqueue(s, [ids[1], ids[2]])
    with db.session() as s:
        dispatch.done(s, todo.row_ids)
    with db.session() as s:
        assert sorted(dispatch.pending(s, max_devices=10).device_ids) == sorted(ids[1:])
        assert dispatch.backlog(s) == 2
