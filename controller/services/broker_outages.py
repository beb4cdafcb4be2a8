"""Record when the broker stopped answering this controller, and when it answered again.

The bus's round-trip probe (controller/mqtt/bus.py) knows it only in memory; a broadcast that
played late because of the outage is looked at minutes or days later, maybe on another replica,
so each transition is written down. An outage counts from the probe's last answer (the broker
was already silent after that) to the first answer after it. A controller that died during an
outage closes its open row when it starts again: what happened meanwhile is unknown.
Nothing is recorded before the broker first answered: a controller started with the broker
down has nothing to compare against, and /healthz already says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from controller.db.models_broker import BrokerOutage
from controller.db.session import Database

log = logging.getLogger(__name__)

PERIOD_S = 1.0  # as often as the bus probes


class ProbedBroker(Protocol):
    last_answer: float | None  # monotonic time of the latest acknowledged probe

    def answering(self) -> bool: ...


class OutageRecorder:
    def __init__(self, db: Database, broker: ProbedBroker, observer: str) -> None:
        self._db = db
        self._broker = broker
        self._observer = observer[:64]
        self._open: int | None = None  # id of this replica's open outage row

    async def run(self) -> None:
        await asyncio.to_thread(self._close_left_open)
        while True:
            await asyncio.sleep(PERIOD_S)
            try:
                await self.observe()
            except Exception:
                log.exception("could not record the broker's state; trying again")

    async def observe(self) -> None:
        last = self._broker.last_answer
        if last is None:
            return
        answering = self._broker.answering()
        if not answering and self._open is None:
            since = datetime.now(UTC) - timedelta(seconds=time.monotonic() - last)
            self._open = await asyncio.to_thread(self._opened, since)
            log.warning("the broker stopped answering at %s", since.isoformat())
        elif answering and self._open is not None:
            await asyncio.to_thread(self._closed, self._open, datetime.now(UTC))
            self._open = None
            log.info("the broker answers again")

    def _opened(self, since: datetime) -> int:
        with self._db.session() as s:
            row = BrokerOutage(observer=self._observer, started_at=since)
            s.add(row)
            s.commit()
            return row.id

    def _closed(self, row_id: int, at: datetime) -> None:
        with self._db.session() as s:
            s.execute(update(BrokerOutage).where(BrokerOutage.id == row_id).values(ended_at=at))
            s.commit()

    def _close_left_open(self) -> None:
        with self._db.session() as s:
            s.execute(update(BrokerOutage)
                      .where(BrokerOutage.observer == self._observer, BrokerOutage.ended_at.is_(None))
                      .values(ended_at=datetime.now(UTC)))  # fmt: skip
            s.commit()


def overlapping(session: Session, since: datetime, until: datetime) -> list[BrokerOutage]:
    """Outages (any replica's) that overlap [since, until], oldest first."""
    return list(session.scalars(
        select(BrokerOutage)
        .where(BrokerOutage.started_at <= until,
               (BrokerOutage.ended_at.is_(None)) | (BrokerOutage.ended_at >= since))
        .order_by(BrokerOutage.started_at)
    ))  # fmt: skip
