"""backup runs: when each backup ran, its file and size, ok or its error

Revision ID: 0018_backups
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = "0018_backups"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backup_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("file", sa.String(length=1024), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_runs")),
    )
    with op.batch_alter_table("backup_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backup_runs_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_table("backup_runs")
