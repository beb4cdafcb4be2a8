"""operations: diagnostic commands, agent update bundles and rollouts

Revision ID: 0012_ops
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = "0012_ops"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "diagnostic_commands",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_diagnostic_commands_created_by_users")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_diagnostic_commands_device_id_devices"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnostic_commands")),
    )
    with op.batch_alter_table("diagnostic_commands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_diagnostic_commands_device_id"), ["device_id"], unique=False)

    op.create_table(
        "update_bundles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("wheel_name", sa.String(length=200), nullable=False),
        sa.Column("wheel_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("min_agent_version", sa.String(length=40), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_update_bundles_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_update_bundles")),
        sa.UniqueConstraint("version", name=op.f("uq_update_bundles_version")),
    )
    op.create_table(
        "update_rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bundle_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("command_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["bundle_id"], ["update_bundles.id"], name=op.f("fk_update_rollouts_bundle_id_update_bundles"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_update_rollouts_created_by_users")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_update_rollouts_device_id_devices"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_update_rollouts")),
        sa.UniqueConstraint("bundle_id", "device_id", name="uq_update_rollouts_bundle_device"),
    )
    with op.batch_alter_table("update_rollouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_update_rollouts_bundle_id"), ["bundle_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_update_rollouts_command_id"), ["command_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_update_rollouts_device_id"), ["device_id"], unique=False)


def downgrade() -> None:
    op.drop_table("update_rollouts")
    op.drop_table("update_bundles")
    op.drop_table("diagnostic_commands")
