"""Make and restore a backup of a controller: database, data dir (media, keys, update wheels).

Inside the encrypted container (`crypto.py`) is an uncompressed tar stream:

    db/sqlite.db.gz | db/postgres.dump    the database (SQLite online backup, or pg_dump -Fc)
    data/<path>                           every file of the data dir: media/, keys/ (signing and
                                          enrollment keys, a keyring), updates/, ...
    manifest.json                         last: versions, database kind, Alembic revisions,
                                          each member's size and SHA-256

Station broker accounts live in the database (each station's Mosquitto password hash): the
restored database is what `restore --broker-dynsec-file` (or `communecast broker
credentials`) writes the broker's accounts from, so stations log in with what they have.

A restore decrypts, authenticates and checks every member into a staging directory next to
the target before anything is put in place: a wrong passphrase or an altered file leaves the
target (and the database) as they were.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

from controller.core.config import Settings
from controller.db.id_floors import RESTORED_MARKER
from controller.services.backup.crypto import BackupError, DamagedBackup, DecryptingReader, EncryptingWriter

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SQLITE_MEMBER = "db/sqlite.db.gz"
PG_MEMBER = "db/postgres.dump"
PG_HINT = ("install the PostgreSQL client tools (Debian/Ubuntu: `apt-get install postgresql-client`, "
           "the server's major version or newer)")
_READ = 1024 * 1024


@dataclass
class BackupResult:
    path: Path
    size: int
    seconds: float
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class RestoreResult:
    data_dir: Path
    database: str
    manifest: dict[str, Any]
    moved_aside: Path | None = None


# ---- where things are ---------------------------------------------------------------------------


def database_kind(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name == "sqlite":
        return "sqlite"
    if name == "postgresql":
        return "postgresql"
    raise BackupError(f"backups support SQLite and PostgreSQL, not {name}")


def sqlite_path(url: str) -> Path:
    db = make_url(url).database
    if not db or db == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(db)


def _excluded(settings: Settings) -> set[Path]:
    """Files and folders of the data dir a backup leaves out (resolved paths)."""
    out = {(settings.media_dir / "tmp").resolve()}
    if database_kind(settings.resolved_database_url) == "sqlite":
        db = sqlite_path(settings.resolved_database_url).resolve()
        out |= {db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))}
    backup_dir = getattr(settings, "backup_dir", None)
    if backup_dir is not None:
        out.add(Path(backup_dir).resolve())
    return out


def data_files(settings: Settings) -> Iterator[tuple[Path, str]]:
    """(file, path inside data/) of every regular file the data dir holds, sorted."""
    root = settings.data_dir.resolve()
    if not root.is_dir():
        return
    skip = _excluded(settings)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if (here / d).resolve() not in skip and not (here / d).is_symlink())
        for name in sorted(filenames):
            path = here / name
            if path.resolve() in skip or path.is_symlink() or name.endswith((".tmp", ".partial")):
                continue
            yield path, path.relative_to(root).as_posix()


def _pg_env(url: str) -> dict[str, str]:
    """libpq's environment for a SQLAlchemy URL (the password never on a command line)."""
    u: URL = make_url(url)
    env = {"PGDATABASE": u.database or "", "PGCONNECT_TIMEOUT": "10"}
    host = u.host or u.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    given = (("PGHOST", host), ("PGPORT", u.port), ("PGUSER", u.username), ("PGPASSWORD", u.password))
    for key, value in given:
        if value:
            env[key] = str(value)
    return {**os.environ, **env}


def need_tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise BackupError(f"{name} not found: {PG_HINT}")
    return exe


def _alembic_revisions_sqlite(path: Path) -> list[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(r[0] for r in con.execute("SELECT version_num FROM alembic_version"))
    except sqlite3.Error:
        return []
    finally:
        con.close()


def _alembic_revisions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return []
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return sorted(str(r) for r in rows)
    finally:
        engine.dispose()


# ---- making a backup ----------------------------------------------------------------------------


class _Hashing:
    """Reads a file object while hashing what went through."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.sha = fh, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        return data


def _add(tar: tarfile.TarFile, name: str, fh: IO[bytes], size: int, mtime: float) -> dict[str, Any]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o600
    hashed = _Hashing(fh)
    tar.addfile(info, hashed)  # type: ignore[arg-type]
    return {"path": name, "size": size, "sha256": hashed.sha.hexdigest()}


def _snapshot_sqlite(src: Path, work: Path) -> tuple[Path, list[str]]:
    """A consistent copy through SQLite's online backup API (writers keep going), gzipped."""
    if not src.exists():
        raise BackupError(f"no SQLite database at {src}")
    copy = work / "snapshot.db"
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)  # one step: a single read transaction, so one point in time
    finally:
        target.close()
        source.close()
    revisions = _alembic_revisions_sqlite(copy)
    packed = work / "snapshot.db.gz"
    with copy.open("rb") as fin, gzip.open(packed, "wb", compresslevel=6) as fout:
        shutil.copyfileobj(fin, fout, _READ)
    copy.unlink()
    return packed, revisions


def _snapshot_postgres(url: str, work: Path) -> tuple[Path, list[str]]:
    """pg_dump in the custom format: one transaction's snapshot while the controller writes."""
    exe = need_tool("pg_dump")
    revisions = _alembic_revisions(url)
    out = work / "postgres.dump"
    done = subprocess.run([exe, "--format=custom", "--no-owner", "--no-privileges", f"--file={out}"],
                          env=_pg_env(url), capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()[-2000:]}")
    return out, revisions


def create_backup(settings: Settings, out: Path, passphrase: str) -> BackupResult:
    """Write an encrypted backup of the controller `settings` describe to `out` (atomically:
    `out` appears only once complete; a failure leaves nothing behind)."""
    started = time.monotonic()
    url = settings.resolved_database_url
    kind = database_kind(url)
    if kind == "postgresql":
        need_tool("pg_dump")  # before any work: say what to install
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".ccbackup-") as tmp:
            work = Path(tmp)
            if kind == "sqlite":
                snap, revisions = _snapshot_sqlite(sqlite_path(url), work)
                member = SQLITE_MEMBER
            else:
                snap, revisions = _snapshot_postgres(url, work)
                member = PG_MEMBER
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as raw:
                enc = EncryptingWriter(raw, passphrase)
                entries: list[dict[str, Any]] = []
                with tarfile.open(fileobj=enc, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    with snap.open("rb") as fh:
                        entries.append(_add(tar, member, fh, snap.stat().st_size, time.time()))
                    # After the database: every file it names exists by now (media are
                    # content-addressed and written before their row).
                    for path, rel in data_files(settings):
                        try:
                            fh = path.open("rb")
                        except FileNotFoundError:
                            continue  # deleted meanwhile
                        with fh:
                            st = os.fstat(fh.fileno())
                            entries.append(_add(tar, f"data/{rel}", fh, st.st_size, st.st_mtime))
                    manifest = _manifest(kind, member, revisions, entries)
                    body = json.dumps(manifest, indent=1, ensure_ascii=False).encode()
                    info = tarfile.TarInfo(MANIFEST)
                    info.size, info.mtime, info.mode = len(body), int(time.time()), 0o600
                    tar.addfile(info, io.BytesIO(body))
                enc.close()
                raw.flush()
                os.fsync(raw.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupResult(out, out.stat().st_size, time.monotonic() - started, manifest)


def _manifest(kind: str, member: str, revisions: list[str], entries: list[dict[str, Any]]) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("communecast")
    except PackageNotFoundError:
        ours = "source"
    return {
        "format": 1, "communecast": ours, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "database": {"kind": kind, "member": member, "alembic_revisions": revisions},
        "keys": [e["path"] for e in entries if e["path"].startswith("data/keys/")],
        "files": entries,
    }  # fmt: skip


# ---- reading one back ---------------------------------------------------------------------------


def _safe_member(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise DamagedBackup(f"backup holds a path outside its folder: {name!r}")
    return p


def unpack(src: Path, passphrase: str, staging: Path) -> dict[str, Any]:
    """Decrypt and extract `src` into `staging`, every byte authenticated and every member
    checked against the manifest; return the manifest. Raises before returning on any doubt."""
    got: dict[str, tuple[int, str]] = {}
    manifest: dict[str, Any] | None = None
    with src.open("rb") as raw:
        reader = DecryptingReader(raw, passphrase)
        try:
            tar = tarfile.open(fileobj=reader, mode="r|")  # type: ignore[call-overload]  # noqa: SIM115
        except tarfile.TarError as exc:
            raise DamagedBackup(f"backup content unreadable: {exc}") from exc
        with tar:
            try:
                for member in tar:
                    rel = _safe_member(member.name)
                    if not member.isfile():
                        raise DamagedBackup(f"backup holds something other than a file: {member.name!r}")
                    fh = tar.extractfile(member)
                    assert fh is not None
                    if member.name == MANIFEST:
                        manifest = json.loads(fh.read(_MAX_MANIFEST))
                        continue
                    dest = staging / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    sha = hashlib.sha256()
                    with dest.open("wb") as out:
                        while chunk := fh.read(_READ):
                            sha.update(chunk)
                            out.write(chunk)
                    got[member.name] = (member.size, sha.hexdigest())
            except tarfile.TarError as exc:
                raise DamagedBackup(f"backup content unreadable: {exc}") from exc
        reader.drain()
    if manifest is None:
        raise DamagedBackup("backup has no manifest (incomplete)")
    listed = {e["path"]: (int(e["size"]), str(e["sha256"])) for e in manifest.get("files", [])}
    if listed.keys() != got.keys():
        odd = sorted(listed.keys() ^ got.keys())[:5]
        raise DamagedBackup(f"backup members differ from its manifest: {odd}")
    bad = [name for name, v in got.items() if listed[name] != v]
    if bad:
        raise DamagedBackup(f"checksum mismatch: {bad[:5]}")
    return manifest


_MAX_MANIFEST = 256 * 1024 * 1024


def _empty_dir(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _pg_is_empty(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.execute(text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg_toast%' "
                "AND c.relkind IN ('r', 'p', 'v', 'm', 'S')")).scalar_one()  # fmt: skip
    except Exception as exc:
        problem = f"{exc.__class__.__name__}: {exc}"
        raise BackupError(f"cannot reach the target PostgreSQL database: {problem}") from exc
    finally:
        engine.dispose()
    return int(n) == 0


def _known_revisions(revisions: list[str]) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from controller.db.session import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    for rev in revisions:
        try:
            if scripts.get_revision(rev) is None:
                raise CommandError(rev)
        except CommandError as exc:
            raise BackupError(f"the backup's database is at migration {rev}, unknown to this communecast: "
                              "restore it with the same or a newer release") from exc


def restore_backup(settings: Settings, src: Path, passphrase: str, *, force: bool = False) -> RestoreResult:
    """Rebuild the controller `settings` describe (data dir and database) from `src`."""
    target = settings.data_dir.resolve()
    url = settings.resolved_database_url
    kind = database_kind(url)
    if not _empty_dir(target) and not force:
        raise BackupError(f"{target} is not empty: restore into a new folder, or pass --force "
                          "(its current content is moved aside, not deleted)")
    if target.exists() and not target.is_dir():
        raise BackupError(f"{target} is not a folder")
    if kind == "postgresql":
        need_tool("pg_restore")
        if not _pg_is_empty(url):
            raise BackupError("the PostgreSQL database named by COMMUNECAST_DATABASE_URL is not empty: "
                              "restore into a newly created, empty database")
    else:
        db_file = sqlite_path(url).resolve()
        inside = db_file.is_relative_to(target)
        if not inside and db_file.exists() and db_file.stat().st_size > 0 and not force:
            raise BackupError(f"{db_file} exists: restore into a new database file, or pass --force")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.restore-"))
    moved_aside: Path | None = None
    try:
        manifest = unpack(src, passphrase, staging)
        db = manifest.get("database", {})
        if db.get("kind") != kind:
            raise BackupError(f"the backup holds a {db.get('kind')} database, the target is {kind}: "
                              "restore into the same kind of database")
        _known_revisions(list(db.get("alembic_revisions", [])))
        data = staging / "data"
        data.mkdir(exist_ok=True)
        os.chmod(data, 0o700)
        if kind == "sqlite":
            restored = staging / "restored.db"
            with gzip.open(staging / SQLITE_MEMBER, "rb") as fin, restored.open("wb") as fout:
                shutil.copyfileobj(fin, fout, _READ)
            con = sqlite3.connect(restored)
            try:
                if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    raise DamagedBackup("the backup's SQLite database fails its integrity check")
            finally:
                con.close()
            if inside:
                dest = data / db_file.relative_to(target)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(restored, dest)
            else:
                db_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(restored, db_file.with_name(db_file.name + ".partial"))
                os.replace(db_file.with_name(db_file.name + ".partial"), db_file)
        else:
            # One transaction: a failure leaves the database empty, as it was.
            done = subprocess.run(
                [need_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction",
                 "--exit-on-error", f"--dbname={_pg_env(url)['PGDATABASE']}", str(staging / PG_MEMBER)],
                env=_pg_env(url), capture_output=True, text=True, check=False)  # fmt: skip
            if done.returncode != 0:
                why = done.stderr.strip()[-2000:]
                raise BackupError(f"pg_restore failed (the database is left empty): {why}")
        if target.exists():
            if any(target.iterdir()):
                stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
                moved_aside = target.with_name(f"{target.name}.before-restore-{stamp}")
                os.replace(target, moved_aside)
            else:
                target.rmdir()
        # The first start raises the id counters past what stations may have seen since the
        # backup (controller/db/id_floors.py).
        (data / RESTORED_MARKER).write_text(f"{datetime.now(UTC).isoformat()}\n")
        os.replace(data, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreResult(target, kind, manifest, moved_aside)
