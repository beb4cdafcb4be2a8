"""Durable dispatch queue and the lease that makes one controller replica dispatch it.

Several controller processes may share one database and one broker (docs/scaling.md).
Anything that changes what a station should do writes a `dispatch_queue` row for it,
ideally in the same transaction as the change; the replica holding the `dispatch`
lease drains the queue (build, sign, publish the desired state, then delete exactly the
rows it read). A replica that dies loses nothing: its rows stay, its lease expires and
another replica takes over. At worst a desired state is published twice (a newer
version with the same items), which stations ignore by item id, so each bulletin still
plays exactly once.

The lease is a plain row updated by compare-and-set, so it works on SQLite (the single
process default, where the one controller simply always holds it) and on PostgreSQL.
Its `epoch` is a fencing token: the transaction that bumps station versions also checks
the lease is still ours, so a paused ex-holder cannot commit after a takeover.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from controller.db.models_dispatch import DispatchLease, DispatchQueue

LEASE_NAME = "dispatch"


class LeaseLost(Exception):
    """The dispatch lease moved to another replica; the current batch must not commit."""


def default_holder(client_id: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{client_id}"[:128]


def enqueue(session: Session, device_ids: Iterable[int]) -> int:
    """Queue desired-state dispatches in the caller's transaction; returns how many."""
    now = datetime.now(UTC)
    rows = [{"device_id": int(d), "queued_at": now} for d in sorted(set(device_ids))]
    if rows:
        session.execute(insert(DispatchQueue), rows)
    return len(rows)


# Keys in `Session.info`: the stations a transaction changed, and whether its commit queued any.
_CHANGED = "communecast.stations_changed"
_QUEUED = "communecast.dispatch_queued"


def stations_changed(session: Session, device_ids: Iterable[int]) -> None:
    """Say that this transaction changes what these stations should do.

    Services call this instead of talking to the publisher: the `before_commit` hook that
    `install` puts on the Database's sessionmaker writes the dispatch rows in the same
    transaction, so a write and the order to tell its stations commit (or vanish) together,
    whichever path (API, panel, CAP, roll, ...) made it.
    """
    ids = session.info.setdefault(_CHANGED, set())
    ids.update(int(d) for d in device_ids)


class QueuedSignal:
    """Who to wake after a commit queued dispatch rows (the DesiredStatePublisher).

    A callback, not an import: services and the session layer never know the publisher.
    Callbacks may run in worker threads (sync routes), so they must be thread-safe.
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def connect(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def fire(self) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()


def install(sessions: sessionmaker[Session]) -> QueuedSignal:
    """Make every session of `sessions` queue the stations it changed in its own commit."""
    queued = QueuedSignal()

    def _queue(session: Session) -> None:
        ids = session.info.pop(_CHANGED, None)
        if ids:
            enqueue(session, ids)
            session.info[_QUEUED] = True

    def _wake(session: Session) -> None:
        if session.info.pop(_QUEUED, False):
            queued.fire()

    def _forget(session: Session, transaction: SessionTransaction) -> None:
        # The outermost transaction ended (after a commit's hooks, or rolled back, or closed):
        # a rolled-back write tells no station anything, and the session may be reused.
        if transaction.parent is None:
            session.info.pop(_CHANGED, None)
            session.info.pop(_QUEUED, None)

    event.listen(sessions, "before_commit", _queue)
    event.listen(sessions, "after_commit", _wake)
    event.listen(sessions, "after_transaction_end", _forget)
    return queued


@dataclass(frozen=True)
class Pending:
    row_ids: list[int]
    device_ids: list[int]


def pending(session: Session, max_devices: int, *, busy: Collection[int] = ()) -> Pending:
    """The oldest queued rows covering at most `max_devices` distinct stations.

    Stations in `busy` (the batch still being published while this one is built) are
    left for a later round, so a station is never in two batches at once.
    """
    query = select(DispatchQueue.id, DispatchQueue.device_id).order_by(DispatchQueue.id)
    if busy:
        query = query.where(DispatchQueue.device_id.not_in(sorted(busy)))
    rows = session.execute(query.limit(max_devices * 4)).all()
    devices: list[int] = []
    chosen: set[int] = set()
    row_ids: list[int] = []
    for _row_id, device_id in rows:
        if device_id not in chosen and len(chosen) < max_devices:
            chosen.add(device_id)
            devices.append(device_id)
    # Every row already queued for these stations is satisfied by this one build (it runs
    # after this read, so it sees the changes those rows were queued for): a station marked
    # by two replicas, or twice, is published once.
    for i in range(0, len(devices), 1000):
        row_ids += session.scalars(
            select(DispatchQueue.id).where(DispatchQueue.device_id.in_(devices[i : i + 1000]))
        ).all()
    return Pending(row_ids, devices)


def done(session: Session, row_ids: Iterable[int]) -> None:
    ids = list(row_ids)
    for i in range(0, len(ids), 1000):
        session.execute(delete(DispatchQueue).where(DispatchQueue.id.in_(ids[i : i + 1000])))


def backlog(session: Session) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(DispatchQueue)) or 0)


class Lease:
    """One named lease row: acquire/renew by compare-and-set, with a fencing epoch."""

    def __init__(self, holder: str, ttl: timedelta, name: str = LEASE_NAME) -> None:
        self.holder = holder
        self.ttl = ttl
        self.name = name
        self.epoch: int | None = None  # set while we believe we hold it

    def acquire_or_renew(self, session: Session, now: datetime | None = None) -> bool:
        """Take the lease if it is free or expired, renew it if it is ours (commit after)."""
        now = now or datetime.now(UTC)
        table = DispatchLease.__table__
        ours = table.c.holder == self.holder
        result = session.execute(
            update(table)
            .where(table.c.name == self.name, ours | (table.c.expires_at < now))
            .values(
                expires_at=now + self.ttl,
                epoch=_case_epoch(self.holder),
                holder=self.holder,
            )
            .returning(table.c.epoch)
        ).first()
        if result is not None:
            self.epoch = int(result[0])
            return True
        if session.get(DispatchLease, self.name) is None:
            try:
                with session.begin_nested():
                    session.add(DispatchLease(name=self.name, holder=self.holder, epoch=1,
                                              expires_at=now + self.ttl))
            except IntegrityError:
                self.epoch = None
                return False
            self.epoch = 1
            return True
        self.epoch = None
        return False

    def fence(self, session: Session, now: datetime | None = None, *, epoch: int | None = None) -> None:
        """Renew inside a write transaction, or raise LeaseLost if it is no longer ours.

        `epoch` is the one held when the batch read its data (default: the current one).
        A batch must pass it: the renewal task may re-take the lease after a takeover
        (A -> B -> A gives a new epoch), and the batch read before that must still fail.
        On PostgreSQL the UPDATE locks the lease row until commit, so a competing
        acquire waits for this transaction and then sees a fresh expiry.
        """
        expected = self.epoch if epoch is None else epoch
        if expected is None:
            raise LeaseLost(self.name)
        now = now or datetime.now(UTC)
        table = DispatchLease.__table__
        result = session.execute(
            update(table)
            .where(table.c.name == self.name, table.c.holder == self.holder, table.c.epoch == expected)
            .values(expires_at=now + self.ttl)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            if self.epoch == expected:
                self.epoch = None
            raise LeaseLost(self.name)

    def release(self, session: Session) -> None:
        """Let another replica take over at once (clean shutdown)."""
        table = DispatchLease.__table__
        session.execute(
            update(table)
            .where(table.c.name == self.name, table.c.holder == self.holder)
            .values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
        self.epoch = None


def _case_epoch(holder: str):  # type: ignore[no-untyped-def]
    """Same holder keeps its epoch; a new holder gets epoch + 1."""
    from sqlalchemy import case

    table = DispatchLease.__table__
    return case((table.c.holder == holder, table.c.epoch), else_=table.c.epoch + 1)
