"""After a restore, ids that name items on stations are never handed out again
(controller/db/id_floors.py): the next broadcast after raise_floors lands past the gap, the
one after it follows on, and a deleted row's id is not reused either. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.db.id_floors import GAP
from controller.db.models import Broadcast
from controller.db.session import Database


def _broadcast(db: Database) -> int:
    with db.session() as s:
        bc = Broadcast(title="Thông báo", media=[], start_at=datetime.now(UTC), duration_s=1.0,
                       targets={"all": True})  # fmt: skip
        s.add(bc)
        s.flush()
        return bc.id


def test_ids_after_a_restore_start_past_the_gap_and_never_go_back(db: Database) -> None:
    made = [_broadcast(db) for _ in range(3)]
    assert made == [made[0], made[0] + 1, made[0] + 2]
    floors = db.raise_id_floors()
    assert floors["broadcasts"] == made[-1] + GAP + 1
    after = [_broadcast(db) for _ in range(2)]
    assert after == [made[-1] + GAP + 1, made[-1] + GAP + 2]
    # Raising again (a second restore of the same backup) only widens the gap.
    again = db.raise_id_floors()
    assert again["broadcasts"] >= after[-1] + GAP
    assert _broadcast(db) == again["broadcasts"]
