"""emergency presets: a province's ready texts (storm, flood, flash flood, fire, epidemic, all-clear)

Revision ID: 0027_emergency_presets
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = "0027_emergency_presets"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emergency_presets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=60), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("led_text", sa.String(length=200), nullable=False),
        sa.Column("voice", sa.String(length=32), nullable=False),
        sa.Column("repeat_hours", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_id"], ["areas.id"], name=op.f("fk_emergency_presets_area_id_areas"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_emergency_presets_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_presets")),
        sa.UniqueConstraint("area_id", "key", name=op.f("uq_emergency_presets_area_id")),
    )
    with op.batch_alter_table("emergency_presets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_emergency_presets_area_id"), ["area_id"], unique=False)


def downgrade() -> None:
    op.drop_table("emergency_presets")
