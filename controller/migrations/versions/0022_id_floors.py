"""id floors: ids that name items on stations are never handed out twice, also after a restore

Revision ID: 0022_id_floors
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_id_floors"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "id_floors",
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("floor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_id_floors")),
    )


def downgrade() -> None:
    op.drop_table("id_floors")
