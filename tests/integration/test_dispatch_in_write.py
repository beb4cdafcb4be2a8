"""Issue 17: telling the stations is part of the write.

A service records the stations it changed on the session (`dispatch.stations_changed`);
the Database's one `before_commit` hook writes their `dispatch_queue` rows in the same
transaction. So a committed write has its dispatch rows, a rolled-back (or failed)
write has none, and the panel and the API, calling the same services, queue the same
stations. Real SQLite and PostgreSQL; the panel test runs the whole app in process.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from controller.db.models import Area, Broadcast, Device, Media, User
from controller.db.models_dispatch import DispatchQueue
from controller.db.session import Database
from controller.services import broadcasts
from controller.services.targets import Targets
from tests.support.browser import ADMIN_PW, Panel, running_panel


def _media(sha: str) -> Media:
    return Media(sha256=sha, original_name="b.mp3", content_type="audio/ogg", size=1000, duration_s=2.0,
                 codec="opus", source_sha256=sha)  # fmt: skip


@pytest.fixture
def seeded(database_url: str) -> Iterator[tuple[Database, User, str, list[int]]]:
    db = Database(database_url)
    db.migrate()
    with db.session() as s:
        commune = Area(level="commune", name="Xã Hợp Hòa")
        admin = User(username="quantri", password_hash="x", role="admin")
        s.add_all([commune, admin])
        s.flush()
        devices = [Device(uid=f"spk-{i}", name=f"Cụm loa {i}", kind="speaker", commune_id=commune.id, tags=[])
                   for i in range(3)]  # fmt: skip
        sha = "c" * 64
        s.add_all([*devices, _media(sha)])
        s.commit()
        s.expunge(admin)
        ids = sorted(d.id for d in devices)
    try:
        yield db, admin, sha, ids
    finally:
        db.dispose()


def _queued(db: Database) -> list[int]:
    with db.session() as s:
        return sorted(s.scalars(select(DispatchQueue.device_id)))


def _broadcasts(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Broadcast)) or 0)


def _req(sha: str) -> broadcasts.BroadcastCreate:
    return broadcasts.BroadcastCreate(title="Bản tin", media_sha256=sha, targets=Targets(all=True))


def test_a_write_and_its_dispatch_rows_commit_together(seeded: tuple[Database, User, str, list[int]]) -> None:
    db, admin, sha, ids = seeded
    woken: list[int] = []
    db.dispatch_queued.connect(lambda: woken.append(1))
    with db.session() as s:
        broadcasts.create(s, _req(sha), admin.id, user=admin)
        s.flush()
        assert _queued(db) == [], "queued before the write committed"
        assert woken == []
    assert _broadcasts(db) == 1
    assert _queued(db) == ids  # one row per station, committed with the broadcast
    assert woken == [1]  # the publisher is woken once, after the commit


def test_a_rolled_back_write_queues_nothing(seeded: tuple[Database, User, str, list[int]]) -> None:
    db, admin, sha, _ids = seeded
    woken: list[int] = []
    db.dispatch_queued.connect(lambda: woken.append(1))
    with pytest.raises(RuntimeError), db.session() as s:
        broadcasts.create(s, _req(sha), admin.id, user=admin)
        raise RuntimeError("crash before the commit")
    # The same session, rolled back explicitly and then reused for another write.
    with db.session() as s:
        broadcasts.create(s, _req(sha), admin.id, user=admin)
        s.rollback()
        s.add(Area(level="commune", name="Xã Kim Long"))
    # A session closed without a commit (a request that ended early), then used again.
    reused = db.sessions()
    broadcasts.create(reused, _req(sha), admin.id, user=admin)
    reused.close()
    reused.add(Area(level="commune", name="Xã Vân Hội"))
    reused.commit()
    reused.close()
    # A commit that fails (a duplicate key flushed by the commit itself) takes its rows with it.
    with pytest.raises(IntegrityError), db.session() as s:
        broadcasts.create(s, _req(sha), admin.id, user=admin)
        s.add(_media(sha))
    assert _broadcasts(db) == 0
    assert _queued(db) == []
    assert woken == []


def test_panel_send_and_api_create_queue_the_same_stations(tmp_path: Path, database_url: str) -> None:
    with running_panel(tmp_path, database_url) as panel:
        _same_rows_from_panel_and_api(panel)


def _same_rows_from_panel_and_api(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=2)
    commune = ids["hop_hoa"]
    sha = secrets.token_hex(32)
    with panel.rt.db.session() as s:
        s.add(_media(sha))
    before = _queued(panel.rt.db)  # start-up re-asserted every station (before the seed: none)
    c = panel.client()
    c.login("admin", ADMIN_PW)  # approves its own sends: they air
    r = c.post_form("/bulletins/send", {"title": "Thông báo", "media_sha256": sha, "priority": "normal",
                                        "target": "communes", "communes": [str(commune)]},
                    csrf_from="/bulletins")  # fmt: skip
    assert r.status_code == 303 and "ok=sent" in r.headers["location"], (r.status_code, r.text[:300])
    from_panel = _queued(panel.rt.db)
    token = c.http.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PW}).json()
    api = c.http.post("/api/v1/broadcasts", headers={"Authorization": f"Bearer {token['access_token']}"},
                      json={"title": "Thông báo", "media_sha256": sha, "targets": {"communes": [commune]}})
    assert api.status_code == 201, api.text
    from_api = _queued(panel.rt.db)
    stations = sorted(ids["devices"][commune])
    assert _minus(from_panel, before) == stations  # one row per station of the commune
    assert _minus(from_api, from_panel) == stations  # the API: exactly the same rows
    with panel.rt.db.session() as s:
        sent = list(s.scalars(select(Broadcast).order_by(Broadcast.id)))
    assert [b.status for b in sent] == ["scheduled", "scheduled"]


def _minus(after: list[int], before: list[int]) -> list[int]:
    """The rows `after` holds beyond `before` (both sorted lists of device ids, a multiset)."""
    rest = list(after)
    for d in before:
        rest.remove(d)
    return rest
