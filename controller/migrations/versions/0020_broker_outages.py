"""broker outages as the controller saw them, so late plays can say why

Revision ID: 0020_broker_outages
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = "0020_broker_outages"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_outages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("observer", sa.String(length=64), nullable=False),
        sa.Column("started_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_outages")),
    )
    with op.batch_alter_table("broker_outages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_broker_outages_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_table("broker_outages")
