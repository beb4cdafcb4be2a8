"""Zalo OA token pair kept in the database (refreshed by the controller); alarm changes held back
in quiet hours, kept for the digest at their end

Revision ID: 0031_zalo_digest
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = "0031_zalo_digest"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zalo_oa_tokens",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("expires_at", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("seed_digest", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("refreshing_by", sa.String(length=64), nullable=True),
        sa.Column("refreshing_until", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zalo_oa_tokens")),
    )
    op.create_table(
        "held_alarm_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("device_name", sa.String(length=200), nullable=False),
        sa.Column("at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("quiet", sa.String(length=11), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("digest_id", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_held_alarm_notes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_alarm_notes")),
        sa.UniqueConstraint("user_id", "channel", "alarm_id", "event",
                            name=op.f("uq_held_alarm_notes_user_id")),
    )
    op.create_index("ix_held_alarm_notes_status_user", "held_alarm_notes", ["status", "user_id", "channel"])


def downgrade() -> None:
    op.drop_index("ix_held_alarm_notes_status_user", table_name="held_alarm_notes")
    op.drop_table("held_alarm_notes")
    op.drop_table("zalo_oa_tokens")
