"""Emergency broadcasts: group fan-out, LED mirror, repeat, timings

Revision ID: 0008_emergency
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = '0008_emergency'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('emergency_broadcasts',
    sa.Column('broadcast_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('voice', sa.String(length=32), nullable=True),
    sa.Column('repeat', sa.Text(), nullable=True),
    sa.Column('schedule_id', sa.Integer(), nullable=True),
    sa.Column('led_message_id', sa.Integer(), nullable=True),
    sa.Column('volume', sa.Integer(), nullable=False),
    sa.Column('topics', sa.JSON(), nullable=False),
    sa.Column('play_ids', sa.JSON(), nullable=False),
    sa.Column('lead_ms', sa.Float(), nullable=False),
    sa.Column('lead_basis', sa.String(length=200), nullable=False),
    sa.Column('requested_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.Column('published_at', controller.db.types.UTCDateTime(), nullable=True),
    sa.Column('publish_ms', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cancelled_at', controller.db.types.UTCDateTime(), nullable=True),
    sa.Column('cancelled_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'],
                            name=op.f('fk_emergency_broadcasts_broadcast_id_broadcasts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['cancelled_by'], ['users.id'],
                            name=op.f('fk_emergency_broadcasts_cancelled_by_users')),
    sa.PrimaryKeyConstraint('broadcast_id', name=op.f('pk_emergency_broadcasts'))
    )
    op.create_index(op.f('ix_emergency_broadcasts_status'), 'emergency_broadcasts', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_emergency_broadcasts_status'), table_name='emergency_broadcasts')
    op.drop_table('emergency_broadcasts')
