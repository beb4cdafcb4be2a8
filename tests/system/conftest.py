"""Fixtures of the system tests: a whole running system (private broker, controller process,
stations added by each test) on each database kind, and the admin's API driver for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testkit.api import Api
from testkit.harness import System


@pytest.fixture
async def system(tmp_path: Path, database_url: str) -> AsyncIterator[System]:
    sys_ = System(tmp_path / "system", database_url)
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()
        log = sys_.root / "controller.log"
        if log.exists():
            print("---- controller log (tail) ----\n" + sys_.controller.log_tail(3000))


@pytest.fixture
async def sqlite_system(tmp_path: Path) -> AsyncIterator[System]:
    """A whole running system on SQLite only: for tests of the stations' or the media side,
    where the database kind plays no part."""
    system = System(tmp_path / "sys", f"sqlite:///{tmp_path / 'c.db'}")
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


@pytest.fixture
def api(system: System) -> Api:
    """The admin's API driver for the `system` fixture (upload, send, wait for acks, play log)."""
    return Api.of(system)
