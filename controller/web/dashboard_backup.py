"""The last backup on the dashboard (admins): when it ran, ok or its error, and the schedule.

Texts are keyed messages (backup.*) in the user's language; times dd/mm/yyyy HH:MM in the
controller's zone (docs/deployment.md, "Backup and restore")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.config import Settings
from controller.core.i18n import human_size, t
from controller.db.models_backup import BackupRun
from controller.db.statuses import BackupStatus
from controller.services.backup.nightly import last_run
from controller.web.i18n import fmt_dt


def last_backup(s: Session, settings: Settings, lang: str) -> dict[str, Any]:
    """{"state": ok | failed | running | none, "lines": [...]} for the dashboard card."""
    tz = settings.timezone
    run = last_run(s)
    lines: list[str] = []
    if run is None:
        state = "none"
        lines.append(t("backup.never", lang))
    elif run.status == BackupStatus.OK:
        state = "ok"
        lines.append(t("backup.last_ok", lang, when=fmt_dt(run.started_at, tz, lang=lang),
                       size=human_size(run.size_bytes or 0)))
    elif run.status == BackupStatus.RUNNING:
        state = "running"
        lines.append(t("backup.running", lang, when=fmt_dt(run.started_at, tz, lang=lang)))
    else:
        state = "failed"
        lines.append(t("backup.last_failed", lang, when=fmt_dt(run.started_at, tz, lang=lang),
                       error=run.error or "?"))
    if state != "ok":
        good = s.scalars(select(BackupRun).where(BackupRun.status == BackupStatus.OK)
                         .order_by(BackupRun.started_at.desc()).limit(1)).first()  # fmt: skip
        if good is not None:
            lines.append(t("backup.last_good", lang, when=fmt_dt(good.started_at, tz, lang=lang)))
    if settings.backup_dir is not None:
        lines.append(t("backup.schedule", lang, at=settings.backup_at, folder=str(settings.backup_dir),
                       keep=settings.backup_keep))
    else:
        lines.append(t("backup.not_scheduled", lang))
    return {"state": state, "lines": lines}
