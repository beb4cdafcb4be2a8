"""Migration 0021_two_tier_areas on an installation with the old three tiers (docs/areas.md).

The database is built with the schema before 0021 (every other head of the migration tree),
filled with SQL rows in each table that names an area, then upgraded to heads like any
installation: every district becomes a group of its communes, the communes hang from the
province, and nothing is lost or re-targeted.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from controller.core import permissions
from controller.db.models import Area, AreaGroupMember, AuditEntry, Broadcast, Delivery, Device, PlayLog, User
from controller.db.models_led import LedMessageRow
from controller.db.models_provincial import ProvincialOutbox
from controller.db.models_schedules import CommunePolicy, Schedule
from controller.db.registry import metadata
from controller.db.session import Database, alembic_config, make_engine
from controller.db.types import UTCDateTime
from controller.services import schedule_horizon
from controller.services.targets import Targets, group_members, resolve

MINE = "0021_two_tier_areas"
NOW = datetime(2025, 6, 30, 8, 0, tzinfo=UTC)


def _t(name: str, *cols: tuple[str, sa.types.TypeEngine]) -> sa.TableClause:  # type: ignore[type-arg]
    return sa.table(name, *(sa.column(c, t) for c, t in cols))


N, S, J, B, D = sa.Integer(), sa.String(), sa.JSON(), sa.Boolean(), UTCDateTime()
AREAS = _t("areas", ("id", N), ("level", S), ("name", S), ("code", S), ("parent_id", N))
DEVICES = _t(
    "devices",
    ("id", N),
    ("uid", S),
    ("name", S),
    ("kind", S),
    ("commune_id", N),
    ("tags", J),
    ("online", B),
    ("reported", J),
    ("desired_version", N),
    ("created_at", D),
)
USERS = _t(
    "users",
    ("id", N),
    ("username", S),
    ("password_hash", S),
    ("role", S),
    ("area_id", N),
    ("active", B),
    ("created_at", D),
)
BROADCASTS = _t(
    "broadcasts",
    ("id", N),
    ("title", S),
    ("media", J),
    ("priority", N),
    ("start_at", D),
    ("duration_s", sa.Float()),
    ("targets", J),
    ("status", S),
    ("created_by", N),
    ("created_at", D),
)
DELIVERIES = _t("deliveries", ("id", N), ("broadcast_id", N), ("device_id", N), ("item_id", S), ("state", S))
PLAY_LOG = _t(
    "play_log",
    ("id", N),
    ("device_id", N),
    ("broadcast_id", N),
    ("item_id", S),
    ("status", S),
    ("updated_at", D),
)
SCHEDULES = _t(
    "schedules",
    ("id", N),
    ("title", S),
    ("media", J),
    ("duration_s", sa.Float()),
    ("rrule", S),
    ("dtstart", D),
    ("exdates", J),
    ("timezone", S),
    ("targets", J),
    ("priority", N),
    ("status", S),
    ("created_at", D),
    ("updated_at", D),
)
POLICIES = _t("commune_policies", ("commune_id", N), ("allowed_hours", J), ("days", J), ("updated_at", D))
LED = _t(
    "led_messages",
    ("id", N),
    ("text", S),
    ("mode", S),
    ("speed", N),
    ("color", S),
    ("duration_s", N),
    ("priority", N),
    ("targets", J),
    ("source", S),
    ("status", S),
    ("created_at", D),
)
AUDIT = _t(
    "audit_log",
    ("id", N),
    ("ts", D),
    ("user_id", N),
    ("action", S),
    ("object_type", S),
    ("object_id", S),
    ("detail", J),
)
OUTBOX = _t(
    "provincial_outbox",
    ("id", N),
    ("kind", S),
    ("device_id", N),
    ("idempotency_key", S),
    ("record", J),
    ("created_at", D),
    ("attempts", N),
)

# province 1 > district 2 (communes 3, 4; village 5 in 3), district 7 (commune 8), commune 6 on the province
TREE = [
    (1, "province", "Tỉnh Vĩnh Phúc", "26", None),
    (2, "district", "Huyện Tam Dương", "250", 1),
    (3, "commune", "Thị trấn Hợp Hòa", "08869", 2),
    (4, "commune", "Xã Kim Long", "08878", 2),
    (5, "village", "Thôn Đồng Bông", None, 3),
    (6, "commune", "Phường Tích Sơn", "08962", 1),
    (7, "district", "Huyện Tam Đảo", "251", 1),
    (8, "commune", "Xã Tam Quan", "08911", 7),
]


def _old_installation(url: str) -> None:
    """Every head but 0021 (the schema an installation had before), then rows written in SQL."""
    engine = make_engine(url)  # foreign keys on: the rows below must be consistent
    cfg = alembic_config(url)
    heads = [h for h in ScriptDirectory.from_config(cfg).get_heads() if h != MINE]
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        for head in heads:
            command.upgrade(cfg, head)
        assert MINE not in {r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
        conn.execute(
            AREAS.insert(),
            [dict(zip(("id", "level", "name", "code", "parent_id"), r, strict=True)) for r in TREE],
        )
        conn.execute(
            DEVICES.insert(),
            [
                {
                    "id": d,
                    "uid": f"spk-{d}",
                    "name": f"Cụm loa {d}",
                    "kind": "speaker",
                    "commune_id": c,
                    "tags": ["x"],
                    "online": False,
                    "reported": {},
                    "desired_version": 3,
                    "created_at": NOW,
                }
                for d, c in ((10, 3), (11, 4), (12, 6), (13, 8))
            ],
        )
        conn.execute(
            USERS.insert(),
            [
                {
                    "id": u,
                    "username": n,
                    "password_hash": "x",
                    "role": r,
                    "area_id": a,
                    "active": True,
                    "created_at": NOW,
                }
                for u, n, r, a in (
                    (20, "huyen", "district", 2),
                    (21, "xa", "commune", 3),
                    (22, "tinh", "province", 1),
                    (23, "ky-thuat", "technician", 7),
                )
            ],
        )
        conn.execute(
            BROADCASTS.insert(),
            [
                {
                    "id": 30,
                    "title": "Bản tin",
                    "media": [],
                    "priority": 50,
                    "start_at": NOW,
                    "duration_s": 5.0,
                    "targets": {"districts": [2], "communes": [6]},
                    "status": "done",
                    "created_by": 20,
                    "created_at": NOW,
                },
                {
                    "id": 31,
                    "title": "Xã",
                    "media": [],
                    "priority": 50,
                    "start_at": NOW,
                    "duration_s": 5.0,
                    "targets": {"communes": [4]},
                    "status": "done",
                    "created_by": 21,
                    "created_at": NOW,
                },
            ],
        )
        conn.execute(
            DELIVERIES.insert(),
            [
                {"id": 40 + d, "broadcast_id": 30, "device_id": d, "item_id": "b30", "state": "acked"}
                for d in (10, 11, 12)
            ],
        )
        conn.execute(
            PLAY_LOG.insert(),
            [
                {
                    "id": 50 + d,
                    "device_id": d,
                    "broadcast_id": 30,
                    "item_id": "b30",
                    "status": "played",
                    "updated_at": NOW,
                }
                for d in (10, 11, 12)
            ],
        )
        conn.execute(
            SCHEDULES.insert(),
            {
                "id": 60,
                "title": "Sáng",
                "media": [],
                "duration_s": 60.0,
                "rrule": "FREQ=DAILY",
                "dtstart": NOW,
                "exdates": [],
                "timezone": "Asia/Ho_Chi_Minh",
                "targets": {"districts": [7]},
                "priority": 50,
                "status": "active",
                "created_at": NOW,
                "updated_at": NOW,
            },
        )
        conn.execute(
            POLICIES.insert(),
            {"commune_id": 3, "allowed_hours": [["05:00", "21:00"]], "days": [], "updated_at": NOW},
        )
        conn.execute(
            LED.insert(),
            {
                "id": 70,
                "text": "Chào",
                "mode": "static",
                "speed": 3,
                "color": "red",
                "duration_s": 60,
                "priority": 50,
                "targets": {"districts": [2, 7]},
                "source": "operator",
                "status": "active",
                "created_at": NOW,
            },
        )
        conn.execute(
            AUDIT.insert(),
            {
                "id": 80,
                "ts": NOW,
                "user_id": 20,
                "action": "area.create",
                "object_type": "area",
                "object_id": "2",
                "detail": {"name": "Huyện Tam Dương"},
            },
        )
        conn.execute(
            OUTBOX.insert(),
            {
                "id": 90,
                "kind": "play",
                "device_id": 10,
                "idempotency_key": "k1",
                "record": {"device": "spk-10"},
                "created_at": NOW,
                "attempts": 0,
            },
        )
    engine.dispose()


def test_districts_become_groups_and_nothing_is_lost(database_url: str) -> None:
    _old_installation(database_url)
    db = Database(database_url)
    db.migrate()  # upgrade heads, as the controller does at start-up
    db.migrate()  # idempotent
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    with db.session() as s:
        areas = {a.id: a for a in s.scalars(select(Area))}
        assert {i: (a.level, a.name, a.code, a.parent_id) for i, a in areas.items()} == {
            1: ("province", "Tỉnh Vĩnh Phúc", "26", None),
            2: ("group", "Huyện Tam Dương", "250", 1),
            3: ("commune", "Thị trấn Hợp Hòa", "08869", 1),
            4: ("commune", "Xã Kim Long", "08878", 1),
            5: ("village", "Thôn Đồng Bông", None, 3),
            6: ("commune", "Phường Tích Sơn", "08962", 1),
            7: ("group", "Huyện Tam Đảo", "251", 1),
            8: ("commune", "Xã Tam Quan", "08911", 1),
        }
        assert {a.id: a.kind for a in areas.values() if a.level == "commune"} == {
            3: "xa",
            4: "xa",
            6: "phuong",
            8: "xa",
        }
        assert all(a.former_names == [] for a in areas.values())
        assert {(m.group_id, m.commune_id) for m in s.scalars(select(AreaGroupMember))} == {
            (2, 3),
            (2, 4),
            (7, 8),
        }
        assert group_members(s, [2]) == {3, 4}
        # Stations keep their commune, users their area; the district operator is now a group operator.
        assert dict(s.execute(select(Device.id, Device.commune_id)).all()) == {10: 3, 11: 4, 12: 6, 13: 8}
        users = {u.username: u for u in s.scalars(select(User))}
        assert {n: (u.role, u.area_id) for n, u in users.items()} == {
            "huyen": ("group", 2),
            "xa": ("commune", 3),
            "tinh": ("province", 1),
            "ky-thuat": ("technician", 7),
        }
        assert permissions.communes_in_scope(s, users["huyen"]) == {3, 4}
        assert permissions.communes_in_scope(s, users["tinh"]) == {3, 4, 6, 8}
        assert permissions.communes_in_scope(s, users["xa"]) == {3}
        assert permissions.communes_in_scope(s, users["ky-thuat"]) == {8}
        # Stored targets name the same stations: districts are now groups (same ids).
        bc = s.get(Broadcast, 30)
        assert bc is not None and bc.targets == {"groups": [2], "communes": [6]}
        assert [d.id for d in resolve(s, Targets.model_validate(bc.targets))] == [10, 11, 12]
        assert s.get(Broadcast, 31).targets == {"communes": [4]}  # type: ignore[union-attr]
        sc = s.get(Schedule, 60)
        assert sc is not None and sc.targets == {"groups": [7]}
        groups = schedule_horizon.groups_by_commune(s, [3, 4, 6, 8])
        assert [
            d.id
            for d in s.scalars(select(Device).order_by(Device.id))
            if schedule_horizon.targets_match(sc.targets, d, groups)
        ] == [13]
        led = s.get(LedMessageRow, 70)
        assert led is not None and led.targets == {"groups": [2, 7]}
        # Nothing else moved.
        for model, n in (
            (Delivery, 3),
            (PlayLog, 3),
            (CommunePolicy, 1),
            (AuditEntry, 1),
            (ProvincialOutbox, 1),
        ):
            assert s.scalar(select(func.count()).select_from(model)) == n, model
        assert s.scalar(select(CommunePolicy.commune_id)) == 3
        assert s.scalar(select(AuditEntry.object_id)) == "2"
    db.dispose()
