"""two-tier local government (1 July 2025): districts become groups of communes

Vietnam has no district level since 1 July 2025 (docs/areas.md). Every `district` area becomes
a `group` (same id, name and code) holding its communes through `area_group_members`; those
communes are re-parented onto the province. Nothing else moves: stations keep their commune,
users keep their area (a district operator's area is now the group, role `district` -> `group`),
policies, audit entries and reports keep their ids, and stored targets naming `districts`
name the same ids as `groups`.

Areas gain `kind` (xa | phuong | dac_khu for communes, read from the name's prefix here) and
`former_names`; `code` becomes unique per level instead of globally.

Revision ID: 0021_two_tier_areas
Revises: 0001 (needs 0003_led and 0004_schedules: their stored targets are rewritten)
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0021_two_tier_areas"
down_revision = "0001"
branch_labels = None
depends_on = ("0003_led", "0004_schedules")

_areas = sa.table(
    "areas",
    sa.column("id", sa.Integer), sa.column("level", sa.String), sa.column("name", sa.String),
    sa.column("kind", sa.String), sa.column("parent_id", sa.Integer), sa.column("former_names", sa.JSON),
)  # fmt: skip
_members = sa.table("area_group_members", sa.column("group_id", sa.Integer), sa.column("commune_id", sa.Integer))
_users = sa.table("users", sa.column("role", sa.String))
# Every table storing a `targets` JSON document (broadcasts, LED messages, schedules).
_TARGET_TABLES = ("broadcasts", "led_messages", "schedules")


def _kind(name: str) -> str:
    low = name.strip().casefold()
    if low.startswith("phường"):
        return "phuong"
    if low.startswith("đặc khu"):
        return "dac_khu"
    return "xa"  # xã, and former thị trấn (every one became a xã or phường)


def _rewrite_targets(conn: sa.Connection, old: str, new: str) -> None:
    """Move the ids listed under `old` in stored targets to `new` (merged, sorted)."""
    for name in _TARGET_TABLES:
        t = sa.table(name, sa.column("id", sa.Integer), sa.column("targets", sa.JSON))
        rows = conn.execute(sa.select(t.c.id, t.c.targets)
                            .where(sa.cast(t.c.targets, sa.Text).like(f'%"{old}"%'))).all()  # fmt: skip
        for row_id, targets in rows:
            doc: dict[str, Any] = json.loads(targets) if isinstance(targets, str) else dict(targets or {})
            moved = doc.pop(old, None)
            if moved is None:
                continue
            if moved:
                doc[new] = sorted(set(doc.get(new) or []) | set(moved))
            conn.execute(t.update().where(t.c.id == row_id).values(targets=doc))


def upgrade() -> None:
    with op.batch_alter_table("areas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("former_names", sa.JSON(), nullable=True))
        batch_op.drop_constraint("uq_areas_code", type_="unique")
        batch_op.create_unique_constraint("uq_areas_level_code", ["level", "code"])
    op.create_table(
        "area_group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("commune_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["commune_id"], ["areas.id"], name=op.f("fk_area_group_members_commune_id_areas"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["group_id"], ["areas.id"], name=op.f("fk_area_group_members_group_id_areas"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "commune_id", name=op.f("pk_area_group_members")),
    )  # fmt: skip
    with op.batch_alter_table("area_group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_area_group_members_commune_id"), ["commune_id"], unique=False)

    conn = op.get_bind()
    areas = conn.execute(sa.select(_areas.c.id, _areas.c.level, _areas.c.name, _areas.c.parent_id)).all()
    districts = {a.id: a.parent_id for a in areas if a.level == "district"}
    for a in areas:
        if a.level == "commune":
            conn.execute(_areas.update().where(_areas.c.id == a.id).values(kind=_kind(a.name)))
        if a.parent_id in districts:
            if a.level == "commune":
                conn.execute(_members.insert().values(group_id=a.parent_id, commune_id=a.id))
            # The commune (or a stray village) now hangs from the district's province.
            conn.execute(_areas.update().where(_areas.c.id == a.id).values(parent_id=districts[a.parent_id]))
    if districts:
        conn.execute(_areas.update().where(_areas.c.level == "district").values(level="group"))
    conn.execute(_areas.update().values(former_names=[]))
    conn.execute(_users.update().where(_users.c.role == "district").values(role="group"))
    _rewrite_targets(conn, "districts", "groups")
    with op.batch_alter_table("areas", schema=None) as batch_op:
        batch_op.alter_column("former_names", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    """Groups become districts again; a commune in several groups goes under the first one
    (lowest id). Fails if two areas of different levels share a code (codes become global)."""
    conn = op.get_bind()
    first: dict[int, int] = {}
    for group_id, commune_id in conn.execute(
        sa.select(_members.c.group_id, _members.c.commune_id).order_by(_members.c.group_id)
    ):
        first.setdefault(commune_id, group_id)
    for commune_id, group_id in first.items():
        conn.execute(_areas.update().where(_areas.c.id == commune_id).values(parent_id=group_id))
    conn.execute(_areas.update().where(_areas.c.level == "group").values(level="district"))
    conn.execute(_users.update().where(_users.c.role == "group").values(role="district"))
    _rewrite_targets(conn, "groups", "districts")
    op.drop_table("area_group_members")
    with op.batch_alter_table("areas", schema=None) as batch_op:
        batch_op.drop_constraint("uq_areas_level_code", type_="unique")
        batch_op.create_unique_constraint("uq_areas_code", ["code"])
        batch_op.drop_column("former_names")
        batch_op.drop_column("kind")
