"""Durable dispatch queue and the dispatch lease (controller replicas)

Revision ID: 0007_dispatch
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = '0007_dispatch'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dispatch_leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('expires_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_dispatch_leases'))
    )
    op.create_table('dispatch_queue',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('queued_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_queue'))
    )
    with op.batch_alter_table('dispatch_queue', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispatch_queue_device_id'), ['device_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dispatch_queue', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispatch_queue_device_id'))
    op.drop_table('dispatch_queue')
    op.drop_table('dispatch_leases')
