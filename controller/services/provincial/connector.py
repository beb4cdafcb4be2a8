"""The loop that feeds the province: status snapshots every interval, outbox drained in batches.

Only the replica holding the dispatch lease sends (`is_leader`, from
DesiredStatePublisher), so two replicas never both deliver; should the lease move in the
middle of a batch, the province still drops the repeat by its idempotency key. On any
failure the batch stays in the outbox and the loop backs off exponentially with jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.db.session import Database
from controller.services.provincial import outbox
from controller.services.provincial.client import ProvincialClient, ProvincialError
from controller.services.provincial.config import ProvincialSettings, apply_mapping

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    ids: list[int]
    records: list[dict[str, Any]]


class ProvincialConnector:
    def __init__(
        self, db: Database, settings: ProvincialSettings, *, is_leader: Callable[[], bool],
        client: ProvincialClient | None = None,
    ) -> None:  # fmt: skip
        self._db = db
        self.settings = settings
        self._is_leader = is_leader
        self.client = client or ProvincialClient(settings)
        self._logins_recorded = 0
        self._failures = 0
        self._backoff_until = 0.0  # loop time
        self._next_snapshot = 0.0  # loop time; 0: at once
        self.sending = False  # this replica is the one delivering (for the status page)
        self.retry_at: datetime | None = None  # when backing off after a failure

    # -- the loop -----------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                self.sending = self._is_leader()
                if self.sending:
                    try:
                        await self.tick()
                    except Exception:
                        log.exception("provincial connector step failed; retrying")
                await asyncio.sleep(self.settings.poll_s)
        finally:
            with contextlib.suppress(Exception):
                await self.client.aclose()

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_snapshot:
            self._next_snapshot = loop.time() + self.settings.interval_s
            await asyncio.to_thread(self._snapshot)
        if loop.time() < self._backoff_until:
            return
        try:
            await self.deliver()
        except ProvincialError as exc:
            self._failures += 1
            s = self.settings
            ceiling = min(s.backoff_max_s, s.backoff_base_s * 2 ** min(self._failures - 1, 30))
            delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter spreads retries out)
            self._backoff_until = loop.time() + delay
            self.retry_at = datetime.now(UTC) + timedelta(seconds=delay)
            log.warning("provincial delivery failed (%s); retrying in %.1f s", exc, delay)
        else:
            self._failures = 0
            self.retry_at = None

    def retry_in(self) -> float | None:
        """Seconds until the next try after a failure (callable from any thread)."""
        at = self.retry_at
        left = (at - datetime.now(UTC)).total_seconds() if at is not None else 0.0
        return round(left, 1) if left > 0 else None

    async def deliver(self) -> int:
        """Send everything queued, play logs first (status rows are superseded anyway)."""
        sent = 0
        paths = ((outbox.PLAY_LOG, self.settings.play_log_path, self.settings.play_log_fields),
                 (outbox.STATUS, self.settings.status_path, self.settings.status_fields))
        for kind, path, mapping in paths:
            while self._is_leader():
                batch = await asyncio.to_thread(self._load, kind, mapping)
                if not batch.ids:
                    break
                try:
                    await self.client.post_batch(path, batch.records, what=kind)
                except ProvincialError as exc:
                    await asyncio.to_thread(self._failed, batch.ids, exc)
                    raise
                await asyncio.to_thread(self._delivered, kind, batch.ids)
                sent += len(batch.ids)
        return sent

    # -- database steps (worker threads) -----------------------------------------------------------------
    def _snapshot(self) -> None:
        with self._db.session() as s:
            n = outbox.snapshot_status(s, self.settings)
        log.debug("queued %d station statuses for the province", n)

    def _load(self, kind: str, mapping: dict[str, str]) -> _Batch:
        with self._db.session() as s:
            rows = outbox.next_batch(s, kind, self.settings.batch_size)
            return _Batch([r.id for r in rows], [apply_mapping(r.record, mapping) for r in rows])

    def _record_logins(self, s: Any) -> None:
        while self._logins_recorded < self.client.logins:
            outbox.logged_in(s)
            self._logins_recorded += 1

    def _delivered(self, kind: str, ids: list[int]) -> None:
        with self._db.session() as s:
            self._record_logins(s)
            outbox.delivered(s, kind, ids)

    def _failed(self, ids: list[int], exc: ProvincialError) -> None:
        with self._db.session() as s:
            self._record_logins(s)
            outbox.failed(s, ids, exc.key, exc.params)
