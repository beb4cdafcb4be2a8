"""Ids that name items on stations are never handed out twice, also after a restore.

A station knows a broadcast as `b<id>`, an LED message and a schedule occurrence by their ids
too, and it plays an item id once (device_agents/common/store.py). A controller restored from
last night's backup would hand out again the ids of everything made since, and every station
that had played one of those would silently skip the new item with the same id.

So the first start after a restore (communecast/commands/backup.py leaves a marker in the data
dir) raises every such table's id counter past a gap no day's work comes near:
PostgreSQL by `setval` on the table's sequence; SQLite, whose INTEGER PRIMARY KEY takes
max(id) + 1 and has no counter, through the `id_floors` table and a `before_insert` hook that
gives a new row `floor` while the table's ids are still below it. Raising twice only
widens the gap.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, event, func, select, text
from sqlalchemy.orm import Mapper

from controller.db.models import Base, Broadcast
from controller.db.models_ids import IdFloor
from controller.db.models_led import LedMessageRow
from controller.db.models_schedules import Schedule

log = logging.getLogger(__name__)

# The tables whose ids reach the stations inside item ids.
EXPOSED: tuple[type[Base], ...] = (Broadcast, LedMessageRow, Schedule)
GAP = 1_000_000
RESTORED_MARKER = "RESTORED"  # in the data dir: a restore happened, raise the floors at the next start


def _below_floor(_mapper: Mapper[object], conn: Connection, target: object) -> None:
    if conn.dialect.name != "sqlite" or getattr(target, "id", None) is not None:
        return
    table = type(target).__table__  # type: ignore[attr-defined]
    floor = conn.scalar(select(IdFloor.floor).where(IdFloor.table_name == table.name))
    if floor is not None and (conn.scalar(select(func.max(table.c.id))) or 0) < floor:
        target.id = floor  # type: ignore[attr-defined]


def install() -> None:
    """Once per process (idempotent): the SQLite hook on every exposed model."""
    for model in EXPOSED:
        if not event.contains(model, "before_insert", _below_floor):
            event.listen(model, "before_insert", _below_floor)


def raise_floors(conn: Connection, gap: int = GAP) -> dict[str, int]:
    """Put the next id of every exposed table at least `gap` above its highest; returns them."""
    out: dict[str, int] = {}
    floors = IdFloor.__table__
    for model in EXPOSED:
        table = model.__table__
        name = str(table.name)  # type: ignore[attr-defined]
        top = conn.scalar(select(func.max(table.c.id))) or 0  # type: ignore[attr-defined]
        if conn.dialect.name == "postgresql":
            seq = conn.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": name})
            now = conn.scalar(text("SELECT COALESCE(pg_sequence_last_value(CAST(:s AS regclass)), 0)"),
                              {"s": seq}) or 0  # fmt: skip
            nxt = int(conn.scalar(text("SELECT setval(CAST(:s AS regclass), :v)"),
                                  {"s": seq, "v": max(now, top + gap)})) + 1  # fmt: skip
        else:
            old = conn.scalar(select(IdFloor.floor).where(IdFloor.table_name == name)) or 0
            nxt = max(old, top + gap + 1)
            conn.execute(floors.delete().where(floors.c.table_name == name))
            conn.execute(floors.insert().values(table_name=name, floor=nxt))
        out[name] = nxt
    log.warning("ids after a restore start at %s: items the stations already played keep theirs", out)
    return out
