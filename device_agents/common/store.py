"""The agent's local memory (SQLite): schedule, what already played, seen ids, outbox.

It is what makes a station offline-first: items and media survive a network outage
or a reboot, and events wait in the outbox until the controller's receipt says they are
stored (protocol.messages.Receipt; the broker's PUBACK is not enough, docs/architecture.md).
Each state change and the event that reports it are written in one transaction, so
a crash can neither lose a proof of play nor let an item play twice.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from protocol.messages import ScheduleItem

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    start_at REAL NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | playing | done
    outcome TEXT,
    source TEXT NOT NULL DEFAULT 'desired'   -- desired (the retained horizon) | command
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    event_id TEXT            -- NULL: forgotten at the broker's PUBACK (no receipt will name it)
);
"""


PRUNE_SEEN_EVERY = 256


@dataclass(frozen=True)
class OutboxEntry:
    seq: int
    topic: str
    payload: bytes
    event_id: str | None = None  # set: kept until a receipt names it


@dataclass(frozen=True)
class QueuedEvent:
    """An event ready for the outbox: where it goes, its bytes, and the id a receipt will name."""

    topic: str
    payload: bytes
    event_id: str


class AgentStore:
    def __init__(self, path: Path | None) -> None:
        """`path=None` (simulated fleets only) keeps the whole store in memory: no file
        descriptor and no disk write per station, and nothing survives the process."""
        if path is None:
            self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
        if "source" not in columns:  # a store written by an older agent
            self._db.execute("ALTER TABLE items ADD COLUMN source TEXT NOT NULL DEFAULT 'desired'")
        if "event_id" not in {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}:
            self._db.execute("ALTER TABLE outbox ADD COLUMN event_id TEXT")  # an older agent's store
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_event ON outbox(event_id)")
        self._remembered = 0
        # The newest outbox seq, so the link can tell "nothing new to send" without a query.
        self.outbox_last_seq = int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # -- key/value -------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))

    # -- replay protection ----------------------------------------------------
    def remember(self, envelope_id: str, expires_at: float) -> bool:
        """Record an envelope id; False if it was seen before (a replay).

        One statement per command; ids past their expiry (which the signature check refuses
        anyway) are swept every PRUNE_SEEN_EVERY commands, not on each one."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO seen(id, expires_at) VALUES (?, ?)", (envelope_id, expires_at)
        )
        self._remembered += 1
        if self._remembered % PRUNE_SEEN_EVERY == 0:
            self._db.execute("DELETE FROM seen WHERE expires_at < ?", (time.time(),))
        return cur.rowcount == 1

    # -- schedule ---------------------------------------------------------------
    def upsert_items(self, items: list[ScheduleItem], source: str = "desired") -> list[ScheduleItem]:
        """Add new items; return those that are new or changed while still pending (to (re)arm).

        An item that comes again unchanged is not returned: re-arming it cancels a runner that
        may be decoding its audio or switching its relay a moment before the start, and the new
        one starts late (seen when a controller restart re-published every station's desired
        state just before a bulletin). `source` says who owns a pending item: a newer desired
        state may drop only the items that came from desired state, never one sent as a command
        (e.g. an emergency on a group topic).
        """
        armed: list[ScheduleItem] = []
        with self._tx() if len(items) > 1 else contextlib.nullcontext(self._db) as db:
            for item in items:
                # New: inserted; pending and changed: updated; unchanged, playing or done: left
                # alone. (An upsert, SQLite >= 3.24; no RETURNING, which older Pi images lack.)
                cur = db.execute(
                    "INSERT INTO items(item_id, start_at, body, source) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(item_id) DO UPDATE SET start_at=excluded.start_at, body=excluded.body "
                    "WHERE items.state='pending' AND items.body IS NOT excluded.body",
                    (item.item_id, item.start_at.timestamp(), item.model_dump_json(), source),
                )
                if cur.rowcount == 1:
                    armed.append(item)
        return armed

    def pending_items(self) -> list[ScheduleItem]:
        rows = self._db.execute(
            "SELECT body FROM items WHERE state='pending' ORDER BY start_at"
        ).fetchall()
        return [ScheduleItem.model_validate_json(r[0]) for r in rows]

    def items_in_state(self, state: str) -> list[ScheduleItem]:
        rows = self._db.execute("SELECT body FROM items WHERE state=?", (state,)).fetchall()
        return [ScheduleItem.model_validate_json(r[0]) for r in rows]

    def item_state(self, item_id: str) -> str | None:
        row = self._db.execute("SELECT state FROM items WHERE item_id=?", (item_id,)).fetchone()
        return row[0] if row else None

    def drop_pending(self, keep: set[str]) -> list[str]:
        """Forget pending desired-state items the controller no longer wants; return their ids."""
        rows = self._db.execute(
            "SELECT item_id FROM items WHERE state='pending' AND source='desired'"
        ).fetchall()
        gone = [r[0] for r in rows if r[0] not in keep]
        with self._tx() as db:
            db.executemany("DELETE FROM items WHERE item_id=?", [(i,) for i in gone])
        return gone

    def from_commands(self) -> set[str]:
        """Items sent as a command (an emergency's PLAY) still pending or playing: only a
        CANCEL ends them, never a desired state that does not list them (`upsert_items`)."""
        rows = self._db.execute(
            "SELECT item_id FROM items WHERE source='command' AND state IN ('pending', 'playing')"
        ).fetchall()
        return {r[0] for r in rows}

    def forget_pending(self, item_id: str) -> bool:
        cur = self._db.execute("DELETE FROM items WHERE item_id=? AND state='pending'", (item_id,))
        return cur.rowcount == 1

    def transition(
        self,
        item_id: str,
        state: str,
        outcome: str | None = None,
        *,
        event: QueuedEvent | None = None,
        expect: str | None = None,
    ) -> bool:
        """Move an item to `state` and queue its event atomically.

        With `expect`, only move it from that state (False otherwise): this is the
        once-only gate that keeps a redelivered item from playing twice.
        """
        with self._tx() as db:
            if expect is not None:
                cur = db.execute(
                    "UPDATE items SET state=?, outcome=? WHERE item_id=? AND state=?",
                    (state, outcome, item_id, expect),
                )
            else:
                cur = db.execute(
                    "UPDATE items SET state=?, outcome=? WHERE item_id=?", (state, outcome, item_id)
                )
            if cur.rowcount != 1:
                return False
            if event is not None:
                self._outbox_insert(event.topic, event.payload, event.event_id)
        return True

    def prune_items(self, older_than: float) -> None:
        self._db.execute("DELETE FROM items WHERE state='done' AND start_at < ?", (older_than,))

    # -- outbox ---------------------------------------------------------------------
    def enqueue(self, topic: str, payload: bytes, event_id: str | None = None) -> None:
        """Queue a message; with `event_id` it stays until a receipt names that id."""
        self._outbox_insert(topic, payload, event_id)

    def _outbox_insert(self, topic: str, payload: bytes, event_id: str | None) -> None:
        cur = self._db.execute(
            "INSERT INTO outbox(topic, payload, created_at, event_id) VALUES (?, ?, ?, ?)",
            (topic, payload, time.time(), event_id),
        )
        self.outbox_last_seq = max(self.outbox_last_seq, int(cur.lastrowid or 0))

    def outbox_head(self, limit: int = 100, *, after: int = 0) -> list[OutboxEntry]:
        """The oldest entries (with `after`: only those queued after that seq)."""
        rows = self._db.execute(
            "SELECT seq, topic, payload, event_id FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [OutboxEntry(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    def outbox_entries(self, seqs: list[int]) -> list[OutboxEntry]:
        """The entries among `seqs` still in the outbox (a receipt may have taken some), in order."""
        found: list[OutboxEntry] = []
        for seq in sorted(seqs):  # a window's worth (OUTBOX_WINDOW) at a time
            sql = "SELECT seq, topic, payload, event_id FROM outbox WHERE seq=?"
            row = self._db.execute(sql, (seq,)).fetchone()
            if row is not None:
                found.append(OutboxEntry(row[0], row[1], bytes(row[2]), row[3]))
        return found

    def outbox_done(self, seq: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE seq=?", (seq,))

    def outbox_receipted(self, event_ids: list[str]) -> list[int]:
        """Forget the events a receipt names; the seqs that were still here. SELECT then DELETE,
        not DELETE ... RETURNING: Raspberry Pi OS 11 ships SQLite 3.34, older than RETURNING."""
        gone: list[int] = []
        with self._tx() as db:
            for event_id in event_ids:
                gone += [r[0] for r in db.execute("SELECT seq FROM outbox WHERE event_id=?", (event_id,))]
                db.execute("DELETE FROM outbox WHERE event_id=?", (event_id,))
        return gone

    def outbox_size(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
