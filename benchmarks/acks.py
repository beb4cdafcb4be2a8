"""`communecast bench acks`: the controller's write path for one emergency's burst of events.

`bench fanout` measures an emergency's acks end to end, where broker, fleet and controller
share the CPU; this isolates what is the controller's own: N acks of one emergency, in the
batches the ingest writer takes (`ingest.MAX_BATCH`), stored as events and marking the N
Delivery rows; then the N play_started and N play_finished events that follow (the proof
of play), on SQLite and PostgreSQL (a throw-away database). No broker, no parsing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from controller.db.models import Area, Broadcast, Delivery, Device, PlayLog
from controller.db.session import Database
from controller.services.ingest import MAX_BATCH, Ingest, _Parsed
from protocol.messages import Event, EventKind
from testkit.pgtemp import fresh_database

ITEM = "em-bench-acks"


def _seed(db: Database, n: int) -> tuple[int, list[str]]:
    """N stations, one emergency broadcast, its N pending deliveries."""
    uids = [f"spk-{i:06d}" for i in range(n)]
    with db.session() as s:
        commune = Area(level="commune", name="Xã Hợp Hòa")
        s.add(commune)
        s.flush()
        s.execute(insert(Device), [{"uid": u, "name": u, "kind": "speaker", "commune_id": commune.id,
                                    "tags": [], "reported": {}} for u in uids])  # fmt: skip
        bc = Broadcast(title="Diễn tập", media=[], priority="emergency", start_at=datetime.now(UTC),
                       duration_s=10, targets={})  # fmt: skip
        s.add(bc)
        s.flush()
        ids = s.scalars(select(Device.id).order_by(Device.id)).all()
        s.execute(insert(Delivery), [{"broadcast_id": bc.id, "device_id": d, "item_id": ITEM,
                                      "state": "pending"} for d in ids])  # fmt: skip
        return bc.id, uids


def _one_backend(name: str, url: str, n: int) -> dict[str, Any]:
    db = Database(url)
    db.migrate()
    try:
        bc_id, uids = _seed(db, n)
        ingest = Ingest(db)
        with db.session() as s:  # stations known already (their telemetry), as before a real emergency
            ingest.resolve_uids(s, set(uids))
        t = time.time()
        phases = {kind: _store_all(ingest, [_Parsed(u, "evt", _event(kind, bc_id, t)) for u in uids])
                  for kind in (EventKind.ACK, EventKind.PLAY_STARTED, EventKind.PLAY_FINISHED)}  # fmt: skip
        with db.session() as s:
            done = (Delivery.broadcast_id == bc_id) & (Delivery.state == "acked")
            acked = int(s.scalar(select(func.count()).select_from(Delivery).where(done)) or 0)
            played = int(s.scalar(select(func.count()).select_from(PlayLog).where(
                PlayLog.broadcast_id == bc_id, PlayLog.status == "played")) or 0)  # fmt: skip
        acks = phases[EventKind.ACK]
        return {
            "backend": name, "acks": n, "acked": acked, "seconds": round(sum(acks), 3),
            "acks_per_s": round(n / sum(acks)) if sum(acks) else None,
            "batch_max_ms": round(max(acks) * 1000, 1), "played": played,
            "play_events_per_s": {k.value: round(n / sum(v)) for k, v in phases.items()
                                  if k is not EventKind.ACK},
        }  # fmt: skip
    finally:
        db.dispose()


def _event(kind: EventKind, bc_id: int, start: float) -> Event:
    """One station's `kind` event for the emergency (a 3 s clip from `start`)."""
    detail: dict[str, Any] = {"items": [ITEM]} if kind is EventKind.ACK else {"started_at": start}
    if kind is EventKind.PLAY_FINISHED:
        detail |= {"finished_at": start + 3.0, "start_error_ms": 1.5, "volume": 100}
    return Event(id=uuid.uuid4().hex, kind=kind, ts=datetime.now(UTC), ref=uuid.uuid4().hex if kind is
                 EventKind.ACK else None, item_id=ITEM, broadcast_id=bc_id, detail=detail)  # fmt: skip


def _store_all(ingest: Ingest, events: list[_Parsed]) -> list[float]:
    """Store them in the writer's batches; seconds per batch."""
    took = []
    for k in range(0, len(events), MAX_BATCH):
        t0 = time.perf_counter()
        ingest.store(events[k : k + MAX_BATCH])
        took.append(time.perf_counter() - t0)
    return took


def run(args: argparse.Namespace) -> int:
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cc-bench-acks-") as tmp:
        for name in backends:
            drop: Callable[[], None] | None = None
            if name == "postgres":
                url, drop = fresh_database(args.postgres_url)
            else:
                url = f"sqlite:///{Path(tmp) / 'communecast.db'}"
            try:
                results.append(_one_backend(name, url, args.devices))
            finally:
                if drop is not None:
                    drop()
    for r in results:
        print(f"{r['backend']}: {r['acked']}/{r['acks']} deliveries acked in {r['seconds']} s "
              f"({r['acks_per_s']} acks/s; in batches of {MAX_BATCH}, "
              f"the slowest {r['batch_max_ms']} ms); then proof of play, events/s: "
              f"{r['play_events_per_s']} ({r['played']} played)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["acked"] == r["acks"] == r["played"] for r in results) else 1
