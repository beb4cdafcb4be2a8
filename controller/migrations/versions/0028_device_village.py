"""a station may name the village it stands in

Revision ID: 0028_device_village
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028_device_village"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("village_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_devices_village_id"), ["village_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_devices_village_id_areas"), "areas", ["village_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_devices_village_id_areas"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_devices_village_id"))
        batch_op.drop_column("village_id")
