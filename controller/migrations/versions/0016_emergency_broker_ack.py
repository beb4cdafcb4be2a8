"""Emergency broadcasts: request -> broker acknowledgement, next to request -> publish

Revision ID: 0016_emergency_broker_ack
Revises: 0008_emergency
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016_emergency_broker_ack'
down_revision = '0008_emergency'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('emergency_broadcasts') as batch:
        batch.add_column(sa.Column('broker_ack_ms', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('emergency_broadcasts') as batch:
        batch.drop_column('broker_ack_ms')
