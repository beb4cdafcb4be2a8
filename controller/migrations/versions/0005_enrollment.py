"""enrollment codes and failed tries

Revision ID: 0005_enrollment
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = "0005_enrollment"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrollment_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("expires_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("used_from", sa.String(length=64), nullable=True),
        sa.Column("revoked_at", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_enrollment_codes_created_by_users")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_enrollment_codes_device_id_devices"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_enrollment_codes_code_hash")),
    )
    with op.batch_alter_table("enrollment_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollment_codes_device_id"), ["device_id"], unique=False)

    op.create_table(
        "enrollment_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_failures")),
    )
    with op.batch_alter_table("enrollment_failures", schema=None) as batch_op:
        batch_op.create_index("ix_enrollment_failures_source_at", ["source", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("enrollment_failures")
    op.drop_table("enrollment_codes")
