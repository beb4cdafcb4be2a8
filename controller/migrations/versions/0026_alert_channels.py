"""alarms where people are: each user's SMS number, Zalo user id, channels and quiet hours

Revision ID: 0026_alert_channels
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = "0026_alert_channels"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_alert_prefs",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("zalo_user_id", sa.String(length=64), nullable=True),
        sa.Column("sms", sa.Boolean(), nullable=False),
        sa.Column("zalo", sa.Boolean(), nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("updated_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_alert_prefs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_alert_prefs")),
    )


def downgrade() -> None:
    op.drop_table("user_alert_prefs")
