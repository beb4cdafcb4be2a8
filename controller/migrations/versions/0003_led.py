"""LED boards: messages and deliveries

Revision ID: 0003_led
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = '0003_led'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('led_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('speed', sa.Integer(), nullable=False),
    sa.Column('color', sa.String(length=16), nullable=False),
    sa.Column('duration_s', sa.Integer(), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('start_at', controller.db.types.UTCDateTime(), nullable=True),
    sa.Column('end_at', controller.db.types.UTCDateTime(), nullable=True),
    sa.Column('targets', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_led_messages_created_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_led_messages'))
    )
    with op.batch_alter_table('led_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_led_messages_end_at'), ['end_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_led_messages_start_at'), ['start_at'], unique=False)

    op.create_table('led_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('led_message_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_led_deliveries_device_id_devices')),
    sa.ForeignKeyConstraint(['led_message_id'], ['led_messages.id'], name=op.f('fk_led_deliveries_led_message_id_led_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_led_deliveries')),
    sa.UniqueConstraint('led_message_id', 'device_id', name=op.f('uq_led_deliveries_led_message_id'))
    )
    with op.batch_alter_table('led_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_led_deliveries_device_id'), ['device_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('led_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_led_deliveries_device_id'))
    op.drop_table('led_deliveries')
    with op.batch_alter_table('led_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_led_messages_start_at'))
        batch_op.drop_index(batch_op.f('ix_led_messages_end_at'))
    op.drop_table('led_messages')
