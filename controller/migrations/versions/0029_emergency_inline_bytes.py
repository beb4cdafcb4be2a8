"""Emergency broadcasts: how many bytes of audio travelled inside the PLAY

Revision ID: 0029_emergency_inline_bytes
Revises: 0016_emergency_broker_ack
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0029_emergency_inline_bytes'
down_revision = '0016_emergency_broker_ack'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('emergency_broadcasts') as batch:
        batch.add_column(sa.Column('inline_bytes', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('emergency_broadcasts') as batch:
        batch.drop_column('inline_bytes')
