"""Backup runs (docs/deployment.md, "Backup and restore"): what the panel shows as the last backup."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.statuses import BackupStatus, BackupTrigger
from controller.db.types import UTCDateTime


class BackupRun(Base):
    """One backup: nightly (controller/services/backup/nightly.py) or `communecast backup`."""

    __tablename__ = "backup_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[BackupTrigger] = mapped_column(String(16), default=BackupTrigger.NIGHTLY)
    status: Mapped[BackupStatus] = mapped_column(String(16), default=BackupStatus.RUNNING)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    file: Mapped[str | None] = mapped_column(String(1024))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
