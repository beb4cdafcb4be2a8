"""`communecast backup` and `communecast restore` (docs/deployment.md, "Backup and restore")."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PASSPHRASE_ENV = "COMMUNECAST_BACKUP_PASSPHRASE"  # noqa: S105 (the variable's name)


def _settings(args: argparse.Namespace) -> Any:
    from controller.core.config import Settings

    overrides: dict[str, object] = {}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    return Settings(**overrides)  # type: ignore[arg-type]


def _passphrase(settings: Any, *, confirm: bool) -> str:
    if settings.backup_passphrase is not None and settings.backup_passphrase.get_secret_value():
        return str(settings.backup_passphrase.get_secret_value())
    if not sys.stdin.isatty():
        raise SystemExit(f"error: set {PASSPHRASE_ENV} or run on a terminal to type the passphrase")
    first = getpass.getpass("Backup passphrase: ")
    if not first:
        raise SystemExit("error: an empty passphrase is not allowed")
    if confirm and getpass.getpass("Again: ") != first:
        raise SystemExit("error: the two passphrases differ")
    return first


def _record(settings: Any, at: datetime, out: Path, *, size: int | None, error: str | None) -> None:
    """The run in backup_runs (what the panel shows), when that database has the table."""
    from sqlalchemy import inspect

    from controller.db.session import Database
    from controller.db.statuses import BackupTrigger
    from controller.services.backup.nightly import record_end, record_start

    try:
        db = Database(settings.resolved_database_url)
        try:
            with db.engine.connect() as conn:
                if not inspect(conn).has_table("backup_runs"):
                    return
            run_id = record_start(db, BackupTrigger.MANUAL, at, out)
            record_end(db, run_id, size=size, error=error)
        finally:
            db.dispose()
    except Exception as exc:  # recording is a courtesy; the backup itself stands
        log.warning("could not record the backup run: %s", exc)


def _backup(args: argparse.Namespace) -> int:
    from communecast.private import owner_only
    from controller.services.backup.archive import create_backup
    from controller.services.backup.crypto import BackupError

    owner_only()
    settings = _settings(args)
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists (pass --force to replace it)", file=sys.stderr)
        return 2
    passphrase = _passphrase(settings, confirm=True)
    at = datetime.now(UTC)
    try:
        result = create_backup(settings, out, passphrase)
    except BackupError as exc:
        _record(settings, at, out, size=None, error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _record(settings, at, result.path, size=result.size, error=None)
    m = result.manifest
    print(f"wrote {result.path}: {result.size} bytes in {result.seconds:.1f} s; "
          f"database {m['database']['kind']} "
          f"at {', '.join(m['database']['alembic_revisions']) or '?'}; {len(m['files']) - 1} data files, "
          f"keys: {', '.join(k.removeprefix('data/keys/') for k in m['keys']) or 'none'}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from communecast.private import owner_only
    from controller.services.backup.archive import restore_backup
    from controller.services.backup.crypto import BackupError

    owner_only()
    settings = _settings(args)
    src = Path(args.file)
    if not src.is_file():
        print(f"error: no backup file {src}", file=sys.stderr)
        return 2
    if args.broker_dynsec_file and not settings.mqtt_password:
        print("error: --broker-dynsec-file needs the controller's broker account "
              "(COMMUNECAST_MQTT_USERNAME, COMMUNECAST_MQTT_PASSWORD)", file=sys.stderr)
        return 2
    passphrase = _passphrase(settings, confirm=False)
    try:
        result = restore_backup(settings, src, passphrase, force=args.force)
    except BackupError as exc:
        print(f"error: {exc} (nothing was restored)", file=sys.stderr)
        return 2
    m = result.manifest
    print(f"restored the backup of {m.get('created_at')} (host {m.get('host')}) into {result.data_dir}, "
          f"{result.database} database: {len(m['files']) - 1} files checked")
    if result.moved_aside is not None:
        print(f"the folder's previous content is in {result.moved_aside}")
    if args.broker_dynsec_file or settings.broker_auth_dir is not None:
        _broker_accounts(settings, Path(args.broker_dynsec_file) if args.broker_dynsec_file else None)
    print("next: start the broker, then `communecast controller run` with the same settings")
    return 0


def _broker_accounts(settings: Any, dynsec_file: Path | None) -> None:
    """Every station's broker account from the restored database (their password hashes):
    the dynamic-security plugin's file, and/or the password/ACL files."""
    from controller.core.security import mosquitto_password_hash
    from controller.db.session import Database
    from controller.services import broker_auth

    db = Database(settings.resolved_database_url)
    try:
        db.migrate()  # what `controller run` would do first anyway
        user = settings.mqtt_username or "communecast-controller"
        controller_hash = mosquitto_password_hash(settings.mqtt_password or "")
        with db.session() as s:
            if dynsec_file is not None:
                config = broker_auth.render_dynsec(s, user, controller_hash)
                broker_auth.write_dynsec(dynsec_file, config)
                print(f"wrote {dynsec_file}: {len(config['clients']) - 1} station accounts "
                      "(start or restart the broker with it)")
            if settings.broker_auth_dir is not None:
                passwd, acl = broker_auth.render(s, user, controller_hash)
                broker_auth.write(settings.broker_auth_dir, passwd, acl)
                print(f"wrote {settings.broker_auth_dir}/passwd, services-passwd and acl")
    finally:
        db.dispose()


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser("backup", help="encrypted backup of the running controller (database, media, keys)")
    b.add_argument("--out", required=True, help="the backup file to write")
    b.add_argument("--data-dir", help="default: COMMUNECAST_DATA_DIR")
    b.add_argument("--force", action="store_true", help="replace --out if it exists")
    b.set_defaults(func=_backup)

    r = sub.add_parser("restore", help="rebuild a controller's data dir and database from a backup")
    r.add_argument("file", help="a file made by `communecast backup` or the nightly backup")
    r.add_argument("--data-dir", required=True, help="the new data dir (must be empty unless --force)")
    r.add_argument("--force", action="store_true",
                   help="restore into a non-empty data dir (its content is moved aside, not deleted)")
    r.add_argument("--broker-dynsec-file",
                   help="also write Mosquitto's dynamic-security file with every station's account "
                        "(a broker that lost its accounts too)")
    r.set_defaults(func=_restore)

