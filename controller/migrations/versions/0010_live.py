"""Streamed broadcasts: live voice and radio relays (docs/live.md)

Revision ID: 0010_live
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = '0010_live'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('live_streams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('broadcast_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=True),
    sa.Column('source_url', sa.String(length=2000), nullable=True),
    sa.Column('format', sa.String(length=16), nullable=True),
    sa.Column('fallback', sa.String(length=8), nullable=False),
    sa.Column('filler', sa.JSON(), nullable=False),
    sa.Column('dead_air_s', sa.Float(), nullable=False),
    sa.Column('start_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.Column('end_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.Column('ended_at', controller.db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'],
                            name=op.f('fk_live_streams_broadcast_id_broadcasts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_live_streams_created_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_streams')),
    sa.UniqueConstraint('broadcast_id', name=op.f('uq_live_streams_broadcast_id'))
    )
    with op.batch_alter_table('live_streams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_streams_end_at'), ['end_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('live_streams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_streams_end_at'))
    op.drop_table('live_streams')
