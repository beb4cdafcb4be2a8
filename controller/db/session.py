"""Engine and sessions; migrations run at start so a fresh data dir just works."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

import controller.db.registry  # noqa: F401  (every feature's tables, before any mapper use)
from controller.db import id_floors
from controller.services import dispatch

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the ingest writer
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")  # feature branches of migrations may coexist
        return
    # SQLite changes a constraint by copying the table (Alembic's batch mode): dropping a table
    # other tables point at needs foreign keys off, which SQLite only allows outside a
    # transaction. They are checked before the commit and switched on again after.
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "heads")
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migration left dangling references: {broken[:5]}")
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


class Database:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Every session queues, in its own commit, the stations it changed
        # (dispatch.stations_changed); `dispatch_queued` fires after such a commit.
        self.dispatch_queued = dispatch.install(self.sessions)
        id_floors.install()

    def migrate(self) -> None:
        migrate(self.engine)

    def raise_id_floors(self) -> dict[str, int]:
        """After a restore: ids the stations may have seen are never handed out again."""
        with self.engine.begin() as conn:
            return id_floors.raise_floors(conn)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
