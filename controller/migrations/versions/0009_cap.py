"""CAP 1.2 alerts received

Revision ID: 0009_cap
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = '0009_cap'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cap_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sender', sa.String(length=255), nullable=False),
    sa.Column('identifier', sa.String(length=255), nullable=False),
    sa.Column('sent', sa.String(length=40), nullable=False),
    sa.Column('sent_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('msg_type', sa.String(length=16), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('references', sa.JSON(), nullable=False),
    sa.Column('thread_id', sa.Integer(), nullable=True),
    sa.Column('language', sa.String(length=35), nullable=True),
    sa.Column('event', sa.Text(), nullable=True),
    sa.Column('headline', sa.Text(), nullable=True),
    sa.Column('urgency', sa.String(length=16), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=True),
    sa.Column('certainty', sa.String(length=16), nullable=True),
    sa.Column('priority', sa.String(length=16), nullable=True),
    sa.Column('raw_xml', sa.Text(), nullable=False),
    sa.Column('broadcast_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('received_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.Column('received_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'], name=op.f('fk_cap_alerts_broadcast_id_broadcasts')),
    sa.ForeignKeyConstraint(['received_by'], ['users.id'], name=op.f('fk_cap_alerts_received_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cap_alerts')),
    sa.UniqueConstraint('sender', 'identifier', name=op.f('uq_cap_alerts_sender'))
    )
    with op.batch_alter_table('cap_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cap_alerts_broadcast_id'), ['broadcast_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cap_alerts_thread_id'), ['thread_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cap_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cap_alerts_thread_id'))
        batch_op.drop_index(batch_op.f('ix_cap_alerts_broadcast_id'))
    op.drop_table('cap_alerts')
