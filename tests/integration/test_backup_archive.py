"""Backups without a running system: the container refuses a wrong passphrase and any altered
byte before anything is written, a restore never lands in a non-empty place, the nightly
service runs once per slot on the lease holder and keeps the N newest (issue 18, item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.core.config import Settings
from controller.db.models import AuditEntry
from controller.db.models_backup import BackupRun
from controller.db.session import Database
from controller.db.statuses import BackupStatus
from controller.services.backup import nightly
from controller.services.backup.archive import _pg_is_empty, create_backup, restore_backup
from controller.services.backup.crypto import BackupError, DamagedBackup, WrongPassphrase
from testkit.pgtemp import fresh_database

PASS = "đúng-mật-khẩu"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path: Path, database_url: str) -> Iterator[Settings]:
    """A controller's data dir with a database row, media, a keyring under keys/, an update wheel."""
    settings = Settings(data_dir=tmp_path / "src", database_url=database_url)
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as s:
        s.add(AuditEntry(action="broadcast.create", object_type="broadcast", object_id="7",
                         detail={"x": "Xã"}))
    db.dispose()
    keys = settings.data_dir / "keys"
    (keys / "ring").mkdir(parents=True)
    (keys / "controller_ed25519.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\n...\n")
    (keys / "enrollment_hmac.key").write_bytes(os.urandom(32))
    (keys / "ring" / "2026-12.pem").write_bytes(b"next key")
    settings.media_dir.mkdir()
    (settings.media_dir / ("ab" * 32 + ".opus")).write_bytes(os.urandom(200_000))
    (settings.media_dir / "tmp").mkdir()
    (settings.media_dir / "tmp" / "half-done").write_bytes(b"x")
    (settings.data_dir / "updates").mkdir()
    (settings.data_dir / "updates" / "cd.whl").write_bytes(b"wheel")
    yield settings


@pytest.fixture
def target(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> Settings:
    """A fresh machine's settings: a new data dir and (PostgreSQL) a new empty database."""
    if database_url.startswith("sqlite"):
        return Settings(data_dir=tmp_path / "fresh" / "data")
    url, drop = fresh_database(request.getfixturevalue("postgres_server"), prefix="cc_restore")
    request.addfinalizer(drop)
    return Settings(data_dir=tmp_path / "fresh" / "data", database_url=url)


def test_round_trip_keeps_every_file_and_row(source: Settings, target: Settings, tmp_path: Path) -> None:
    made = create_backup(source, tmp_path / "b.ccbackup", PASS)
    paths = [f["path"] for f in made.manifest["files"]]
    assert "data/keys/ring/2026-12.pem" in paths and "data/updates/cd.whl" in paths
    assert not any("tmp/half-done" in p or p.endswith("communecast.db") for p in paths)
    assert made.manifest["database"]["alembic_revisions"]
    assert oct((tmp_path / "b.ccbackup").stat().st_mode & 0o777) == "0o600"

    restore_backup(target, tmp_path / "b.ccbackup", PASS)
    got, want = _tree(target.data_dir), _tree(source.data_dir)
    want = {k: v for k, v in want.items() if not k.startswith(("media/tmp/", "communecast.db"))}
    got.pop("communecast.db", None)
    assert got.pop("RESTORED")  # the first start raises the id counters (controller/db/id_floors.py)
    assert got == want
    db = Database(target.resolved_database_url)
    try:
        with db.session() as s:
            assert [a.detail for a in s.scalars(select(AuditEntry))] == [{"x": "Xã"}]
    finally:
        db.dispose()


def test_wrong_passphrase_is_refused_before_anything_is_written(
    source: Settings, target: Settings, tmp_path: Path
) -> None:
    create_backup(source, tmp_path / "b.ccbackup", PASS)
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        restore_backup(target, tmp_path / "b.ccbackup", "sai mật khẩu")
    assert not target.data_dir.exists()
    assert list(target.data_dir.parent.iterdir()) == []  # no staging left behind


@pytest.mark.parametrize("where", ["header", "middle", "end", "truncated", "appended"])
def test_altered_file_is_refused_and_nothing_is_restored(
    source: Settings, target: Settings, tmp_path: Path, where: str
) -> None:
    path = tmp_path / "b.ccbackup"
    create_backup(source, path, PASS)
    data = bytearray(path.read_bytes())
    if where == "header":
        data[30] ^= 0x01  # inside the JSON header: every chunk's associated data
    elif where == "middle":
        data[len(data) // 2] ^= 0x40
    elif where == "end":
        data[-3] ^= 0x01
    elif where == "truncated":
        del data[-100:]
    else:
        data += b"more"
    path.write_bytes(bytes(data))
    with pytest.raises(BackupError):
        restore_backup(target, path, PASS)
    assert not target.data_dir.exists()
    if target.database_url:  # PostgreSQL: still empty, ready for the right file
        assert _pg_is_empty(target.database_url)


def test_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(DamagedBackup, match="not a communecast backup"):
        restore_backup(Settings(data_dir=tmp_path / "d"), tmp_path / "x", PASS)


def test_non_empty_target_is_refused_unless_forced(
    source: Settings, target: Settings, tmp_path: Path
) -> None:
    create_backup(source, tmp_path / "b.ccbackup", PASS)
    target.data_dir.mkdir(parents=True)
    (target.data_dir / "something.txt").write_text("mine")
    with pytest.raises(BackupError, match="not empty"):
        restore_backup(target, tmp_path / "b.ccbackup", PASS)
    assert _tree(target.data_dir) == {"something.txt": b"mine"}
    done = restore_backup(target, tmp_path / "b.ccbackup", PASS, force=True)
    assert done.moved_aside is not None and _tree(done.moved_aside) == {"something.txt": b"mine"}
    assert (target.data_dir / "keys" / "ring" / "2026-12.pem").exists()


@pytest.mark.postgres
def test_non_empty_postgres_database_is_refused(
    tmp_path: Path, postgres_server: str, request: pytest.FixtureRequest
) -> None:
    url, drop = fresh_database(postgres_server, prefix="cc_src")
    request.addfinalizer(drop)
    src = Settings(data_dir=tmp_path / "src", database_url=url)
    Database(url).migrate()
    create_backup(src, tmp_path / "b.ccbackup", PASS)
    with pytest.raises(BackupError, match="not empty"):  # the source itself is not empty
        restore_backup(Settings(data_dir=tmp_path / "new", database_url=url), tmp_path / "b.ccbackup", PASS)
    assert not (tmp_path / "new").exists()


def test_cli_refuses_a_wrong_passphrase_cleanly(source: Settings, tmp_path: Path) -> None:
    env = {**os.environ, "COMMUNECAST_BACKUP_PASSPHRASE": PASS, "COMMUNECAST_DATA_DIR": str(source.data_dir),
           "COMMUNECAST_DATABASE_URL": source.resolved_database_url}
    out = tmp_path / "cli.ccbackup"
    made = subprocess.run([sys.executable, "-m", "communecast.cli", "backup", "--out", str(out)],
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    env = {**env, "COMMUNECAST_BACKUP_PASSPHRASE": "nhầm", "COMMUNECAST_DATABASE_URL": ""}
    env.pop("COMMUNECAST_DATABASE_URL")
    fresh = tmp_path / "fresh-cli"
    done = subprocess.run([sys.executable, "-m", "communecast.cli", "restore", str(out),
                           "--data-dir", str(fresh)],
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "wrong passphrase" in done.stderr and "nothing was restored" in done.stderr
    assert not fresh.exists()


# ---- nightly --------------------------------------------------------------------------------


def test_slot_is_local_time_in_the_zone() -> None:
    # 02:30 in Hà Nội (UTC+7) is 19:30 UTC the day before; 20:00 UTC is 03:00 there.
    now = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
    assert nightly.slot_before(now, "02:30", "Asia/Ho_Chi_Minh") == datetime(2026, 12, 6, 19, 30, tzinfo=UTC)
    now = datetime(2026, 12, 5, 19, 0, tzinfo=UTC)  # 02:00 local: yesterday's slot
    assert nightly.slot_before(now, "02:30", "Asia/Ho_Chi_Minh") == datetime(2026, 12, 4, 19, 30, tzinfo=UTC)


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    start = datetime(2026, 12, 1, 19, 30, tzinfo=UTC)
    names = [nightly.file_name(start + timedelta(days=i)) for i in range(6)]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not ours")
    removed = nightly.prune(tmp_path, 3)
    assert sorted(p.name for p in removed) == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[3:], "notes.txt"])


def test_nightly_runs_once_per_slot_on_the_leader_and_prunes(source: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    cfg = Settings(data_dir=source.data_dir, database_url=source.database_url, backup_dir=folder,
                   backup_keep=2, backup_passphrase=PASS)
    leader = {"yes": False}
    db = Database(cfg.resolved_database_url)
    try:
        service = nightly.NightlyBackup(db, cfg, is_leader=lambda: leader["yes"])
        night = datetime(2026, 12, 5, 19, 31, tzinfo=UTC)  # 02:31 in Hà Nội
        assert service.due(night) is None  # not the lease holder
        leader["yes"] = True
        for day in range(3):
            at = night + timedelta(days=day)
            assert service.due(at) is not None
            run = service.run_once(at)
            assert run.status == BackupStatus.OK and run.size_bytes and Path(run.file or "").exists()
            assert service.due(at + timedelta(minutes=5)) is None  # done for that night
        assert len(list(folder.iterdir())) == 2  # keep = 2
        assert service.due(night + timedelta(days=3, hours=13)) is None  # long past: wait for the next slot
        with db.session() as s:
            assert [r.status for r in s.scalars(select(BackupRun))] == [BackupStatus.OK] * 3
    finally:
        db.dispose()


def test_nightly_failure_is_recorded_and_keeps_old_backups(source: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    old = folder / nightly.file_name(datetime(2026, 1, 1, tzinfo=UTC))
    old.write_bytes(b"older backup")
    cfg = Settings(data_dir=source.data_dir, database_url=source.database_url, backup_dir=folder,
                   backup_keep=1, backup_passphrase=None)
    db = Database(cfg.resolved_database_url)
    try:
        run = nightly.NightlyBackup(db, cfg, is_leader=lambda: True).run_once(datetime.now(UTC))
        assert run.status == BackupStatus.FAILED and "COMMUNECAST_BACKUP_PASSPHRASE" in (run.error or "")
        assert [p.name for p in folder.iterdir()] == [old.name]
    finally:
        db.dispose()
