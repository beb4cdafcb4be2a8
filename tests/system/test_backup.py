"""Issue 18, item 4 acceptance: a backup of a running controller, restored on a "fresh machine"
(new data dir, new database, a broker that lost its accounts), brings every station back
without re-enrollment: same signing key, same broker accounts. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from testkit.api import Api
from testkit.harness import Station, System
from testkit.pgtemp import fresh_database
from testkit.waiting import eventually
from tests.support.audio import tone

PASSPHRASE = "mật khẩu sao lưu 2026"


def both_played(rows: list[dict[str, object]]) -> bool:
    return sum(r["status"] == "played" for r in rows) == 2


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "communecast.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def applied(st: Station) -> int:
    """The desired-state version the station last applied."""
    return int(st.running.agent.store.get("desired_version") or 0)


def starting_at(when: datetime) -> Callable[[object], bool]:
    return lambda p: abs(p.requested_start - when.timestamp()) < 0.01  # type: ignore[attr-defined]


async def test_restore_on_a_fresh_machine_brings_every_station_back(
    system: System, api: Api, tmp_path: Path, database_url: str, request: pytest.FixtureRequest,
) -> None:
    stations = await system.add_stations(2)
    media = await api.upload(tone(tmp_path / "t.wav", seconds=1.0))
    first_at = datetime.now(UTC) + timedelta(seconds=3)
    first = await api.send(media, first_at, {"all": True})
    for st in stations:
        await st.sink.wait_for(starting_at(first_at), timeout=15)
    played = await eventually(lambda: api.play_log(first["id"]),
                              both_played, timeout=15, what="proof of play of the first bulletin")
    # The next scheduled bulletin: in the backup, it plays after the restore.
    next_at = datetime.now(UTC) + timedelta(seconds=20)
    nxt = await api.send(media, next_at, {"all": True}, title="Bản tin tiếp theo")
    await api.wait_for_acks(nxt["id"], 2, timeout=10)
    audit_before = await system.api_json("GET", "/api/v1/reports/audit")
    assert audit_before

    # Backup while the controller runs.
    env = dict(system.controller.env, COMMUNECAST_BACKUP_PASSPHRASE=PASSPHRASE)
    backup = tmp_path / "nightly.ccbackup"
    done = cli(env, "backup", "--out", str(backup))
    assert done.returncode == 0, done.stderr
    assert "keys: controller_ed25519.pem" in done.stdout, done.stdout
    assert backup.stat().st_size > 0

    # Made after the backup and lost with the controller: the stations played it. Its id must
    # not be handed out again after the restore, or they would skip the new item with that id.
    lost_at = datetime.now(UTC) + timedelta(seconds=2)
    lost = await api.send(media, lost_at, {"all": True}, title="Sau bản sao lưu, bị mất")
    for st in stations:
        await st.sink.wait_for(starting_at(lost_at), timeout=15)

    # The controller keeps going after the backup: its restart re-publishes every station, so
    # the stations now hold a newer desired-state version than the backup knows.
    versions = {st.uid: applied(st) for st in stations}
    await system.restart_controller()
    for st in stations:
        await eventually(lambda st=st: asyncio.sleep(0, applied(st)), lambda v, st=st: v > versions[st.uid],
                         timeout=15, what="a post-backup version")  # fmt: skip

    # Disaster: the controller, its data dir and its database are gone.
    system.controller.stop()
    shutil.rmtree(system.root / "controller")
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).unlink()

    # A fresh machine: a new data dir, a new (empty) database.
    new_dir = tmp_path / "fresh" / "controller"
    new_env = dict(env, COMMUNECAST_DATA_DIR=str(new_dir))
    if database_url.startswith("sqlite"):
        new_env.pop("COMMUNECAST_DATABASE_URL")  # the default: communecast.db in the data dir
    else:
        url, drop = fresh_database(request.getfixturevalue("postgres_server"), prefix="cc_restore")
        request.addfinalizer(drop)
        new_env["COMMUNECAST_DATABASE_URL"] = url
    accounts = tmp_path / "dynamic-security.json"
    args = ["restore", str(backup), "--data-dir", str(new_dir)]
    if system.broker.dynsec:
        args += ["--broker-dynsec-file", str(accounts)]
    done = cli(new_env, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    if database_url.startswith("sqlite"):
        assert (new_dir / "communecast.db").exists()
    assert (new_dir / "keys" / "controller_ed25519.pem").exists()

    # The broker lost its accounts too: it gets them back from the restored database.
    if system.broker.dynsec:
        system.broker.stop()
        shutil.rmtree(system.broker.directory / "persist", ignore_errors=True)
        shutil.move(accounts, system.broker.dynsec_file)
        system.broker.start()
    system.controller.env = new_env
    system.controller.start()
    await system.controller.wait_healthy()

    # Every station is back on its old credentials (no new code, no new key).
    devices = await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                               lambda ds: len(ds) == 2 and all(d["online"] for d in ds),
                               timeout=30, what="both stations online")  # fmt: skip
    assert {d["uid"] for d in devices} == {st.uid for st in stations}
    for st in stations:  # the bulletin scheduled before the backup plays and is proven
        await st.sink.wait_for(starting_at(next_at), timeout=30)
    # A station's play_finished sent while the controller was down (and the broker's queue wiped
    # with its accounts) comes again after the receipt wait: 15 s, then up to 30 s (jittered).
    await eventually(lambda: api.play_log(nxt["id"]),
                     both_played, timeout=60, what="proof of play of the scheduled bulletin")

    # A new bulletin from the restored controller: signed with the same key, accepted by all.
    new_at = datetime.now(UTC) + timedelta(seconds=3)
    new = await api.send(media, new_at, {"all": True}, title="Sau khi khôi phục")
    assert new["id"] != lost["id"] and not (new_dir / "RESTORED").exists()
    for st in stations:
        await st.sink.wait_for(starting_at(new_at), timeout=20)
    await eventually(lambda: api.play_log(new["id"]),
                     both_played, timeout=15, what="proof of play after the restore")

    # What happened before the backup is intact.
    assert await api.play_log(first["id"]) == played
    audit_after = await system.api_json("GET", "/api/v1/reports/audit")
    assert {a["id"] for a in audit_before} <= {a["id"] for a in audit_after}
    assert all(applied(st) > versions[st.uid] + 1 for st in stations)  # above the restored count
