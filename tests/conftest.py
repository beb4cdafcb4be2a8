"""Fixtures every test folder uses: databases (SQLite and PostgreSQL) and a migrated `db`.

The whole running system and its API driver are in tests/system/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from controller.db.session import Database
from testkit.pgtemp import fresh_database
from testkit.zygote import FORK_ENV

PG_URL = os.environ.get(
    "COMMUNECAST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"

# New password hashes at scrypt N = 2**10 instead of production's 2**14 in this process and in
# every controller it starts (Settings.password_scrypt_n): the suite makes ~2,000 of them (every
# login, every account), ~45 ms of CPU each at full cost, and it is CPU-bound. Only the cost
# changes, not the code path; tests/unit/test_password_hashing.py checks the production default.
os.environ.setdefault("COMMUNECAST_PASSWORD_SCRYPT_N", str(2**10))
# System tests' controllers forked from a process that has imported them (testkit/zygote.py):
# the import was 1.25 s of the 1.7 s of CPU each of the suite's 100-odd controller starts cost.
os.environ.setdefault(FORK_ENV, "1")


def _postgres_available() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {exc.__class__.__name__}"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_available()
    if problem:
        if IN_CI:
            pytest.fail(f"{problem} (CI=true: PostgreSQL tests must run, not skip)")
        pytest.skip(problem)
    return PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind for one test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'controller.db'}"
        return
    url, drop = fresh_database(request.getfixturevalue("postgres_server"), prefix="cc_test")
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated, empty database of each kind (a module that needs rows overrides `db` with
    a fixture of the same name that takes this one and seeds it)."""
    database = Database(database_url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()
