"""The nightly backup: every day at `backup_at` (local time), into `backup_dir`, `backup_keep` kept.

Started by the runtime (controller/runtime.py); only the replica holding the dispatch lease
makes it (`is_leader`), and a run recorded since the day's slot (by any replica) means it is
done. A controller that was down at the slot makes the backup when it comes back, within
CATCH_UP of it. Each run is a `backup_runs` row (running -> ok | failed): the dashboard
shows the last one (controller/web/dashboard_backup.py). Old files are pruned only after a
backup succeeded, so a failing night never eats the good backups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.config import Settings
from controller.db.models_backup import BackupRun
from controller.db.session import Database
from controller.db.statuses import BackupStatus, BackupTrigger
from controller.services.backup.archive import create_backup

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "communecast-", ".ccbackup"
CATCH_UP = timedelta(hours=12)
TICK_S = 30.0


def file_name(at: datetime) -> str:
    """communecast-20261206T193000Z.ccbackup: UTC, so names sort by time."""
    return f"{PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M%SZ}{SUFFIX}"


def slot_before(now: datetime, at: str, tz: str) -> datetime:
    """The latest scheduled instant at or before `now` (UTC)."""
    zone = ZoneInfo(tz)
    hh, mm = (int(x) for x in at.split(":"))
    local = now.astimezone(zone)
    slot = datetime.combine(local.date(), time(hh, mm), tzinfo=zone)
    if slot > local:
        slot = datetime.combine(local.date() - timedelta(days=1), time(hh, mm), tzinfo=zone)
    return slot.astimezone(UTC)


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest backups in `folder` (only files this service names)."""
    ours = sorted(p for p in folder.glob(f"{PREFIX}*{SUFFIX}") if p.is_file())
    old = ours[: max(len(ours) - keep, 0)]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def last_run(s: Session, trigger: BackupTrigger | None = None) -> BackupRun | None:
    q = select(BackupRun).order_by(BackupRun.started_at.desc(), BackupRun.id.desc()).limit(1)
    if trigger is not None:
        q = q.where(BackupRun.trigger == trigger)
    return s.scalars(q).first()


def record_start(db: Database, trigger: BackupTrigger, at: datetime, file: Path | None) -> int:
    with db.session() as s:
        run = BackupRun(trigger=trigger, status=BackupStatus.RUNNING, started_at=at,
                        file=str(file) if file else None)
        s.add(run)
        s.flush()
        return run.id


def record_end(db: Database, run_id: int, *, size: int | None = None, error: str | None = None) -> None:
    with db.session() as s:
        run = s.get(BackupRun, run_id)
        if run is None:
            return
        run.finished_at = datetime.now(UTC)
        run.status = BackupStatus.FAILED if error else BackupStatus.OK
        run.size_bytes, run.error = size, (error[:2000] if error else None)


class NightlyBackup:
    def __init__(self, db: Database, settings: Settings, *, is_leader: Callable[[], bool],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db, self.settings, self.is_leader, self.clock = db, settings, is_leader, clock

    def due(self, now: datetime) -> datetime | None:
        """The slot to back up now, or None (not the leader, done already, or long past)."""
        if self.settings.backup_dir is None or not self.is_leader():
            return None
        slot = slot_before(now, self.settings.backup_at, self.settings.timezone)
        if now - slot > CATCH_UP:
            return None
        with self.db.session() as s:
            last = last_run(s, BackupTrigger.NIGHTLY)
        if last is not None and last.started_at >= slot:
            return None
        return slot

    def run_once(self, now: datetime) -> BackupRun:
        """Make one backup now, record it, prune; the recorded run (failures included)."""
        cfg = self.settings
        assert cfg.backup_dir is not None
        out = Path(cfg.backup_dir) / file_name(now)
        run_id = record_start(self.db, BackupTrigger.NIGHTLY, now, out)
        try:
            if cfg.backup_passphrase is None or not cfg.backup_passphrase.get_secret_value():
                raise ValueError("COMMUNECAST_BACKUP_PASSPHRASE is not set: nothing to encrypt a backup with")
            result = create_backup(cfg, out, cfg.backup_passphrase.get_secret_value())
        except Exception as exc:
            log.exception("nightly backup failed")
            record_end(self.db, run_id, error=f"{exc.__class__.__name__}: {exc}")
        else:
            log.info("nightly backup %s: %d bytes in %.1f s", out, result.size, result.seconds)
            record_end(self.db, run_id, size=result.size)
            for p in prune(Path(cfg.backup_dir), cfg.backup_keep):
                log.info("removed old backup %s (keeping %d)", p, cfg.backup_keep)
        with self.db.session() as s:
            run = s.get(BackupRun, run_id)
            assert run is not None
            return run

    async def run(self) -> None:
        while True:
            try:
                now = self.clock()
                if await asyncio.to_thread(self.due, now) is not None:
                    await asyncio.to_thread(self.run_once, now)
            except Exception:
                log.exception("nightly backup check failed; retrying next tick")
            await asyncio.sleep(TICK_S)
