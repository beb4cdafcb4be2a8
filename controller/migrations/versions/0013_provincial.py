"""Provincial connector: durable outbox and delivery state

Revision ID: 0013_provincial
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = "0013_provincial"
down_revision = "0001"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "provincial_outbox",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("created_at", controller.db.types.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provincial_outbox")),
    )
    with op.batch_alter_table("provincial_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_provincial_outbox_kind_id", ["kind", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_provincial_outbox_device_id"), ["device_id"], unique=False)
    op.create_table(
        "provincial_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_success_at", controller.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", controller.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_error_key", sa.String(length=64), nullable=True),
        sa.Column("last_error_detail", sa.Text(), nullable=True),
        sa.Column("last_error_at", controller.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_login_at", controller.db.types.UTCDateTime(), nullable=True),
        sa.Column("logins", sa.Integer(), nullable=False),
        sa.Column("delivered_status", BIGINT, nullable=False),
        sa.Column("delivered_play_log", BIGINT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provincial_state")),
    )


def downgrade() -> None:
    op.drop_table("provincial_state")
    with op.batch_alter_table("provincial_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provincial_outbox_device_id"))
        batch_op.drop_index("ix_provincial_outbox_kind_id")
    op.drop_table("provincial_outbox")
