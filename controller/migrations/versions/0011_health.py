"""Station health: telemetry samples and rollups, alarms (docs/health.md)

Revision ID: 0011_health
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = '0011_health'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('telemetry_rollups',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('bucket_start', controller.db.types.UTCDateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('min', sa.Float(), nullable=False),
    sa.Column('avg', sa.Float(), nullable=False),
    sa.Column('max', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telemetry_rollups'))
    )
    with op.batch_alter_table('telemetry_rollups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_telemetry_rollups_bucket_start'), ['bucket_start'], unique=False)
        batch_op.create_index('uq_telemetry_rollups_key', ['device_id', 'metric', 'bucket_start'], unique=True)

    op.create_table('telemetry_samples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('ts', controller.db.types.UTCDateTime(), nullable=False),
    sa.Column('uptime_s', sa.Float(), nullable=True),
    sa.Column('cpu_temp_c', sa.Float(), nullable=True),
    sa.Column('disk_free_mb', sa.Float(), nullable=True),
    sa.Column('net_type', sa.String(length=16), nullable=True),
    sa.Column('net_signal_dbm', sa.Float(), nullable=True),
    sa.Column('clock_offset_ms', sa.Float(), nullable=True),
    sa.Column('volume', sa.Float(), nullable=True),
    sa.Column('relay_on', sa.Boolean(), nullable=True),
    sa.Column('playing', sa.Boolean(), nullable=True),
    sa.Column('mains_v', sa.Float(), nullable=True),
    sa.Column('amp_current_a', sa.Float(), nullable=True),
    sa.Column('cabinet_temp_c', sa.Float(), nullable=True),
    sa.Column('led_reachable', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telemetry_samples'))
    )
    with op.batch_alter_table('telemetry_samples', schema=None) as batch_op:
        batch_op.create_index('ix_telemetry_samples_device_ts', ['device_id', 'ts'], unique=False)
        batch_op.create_index(batch_op.f('ix_telemetry_samples_ts'), ['ts'], unique=False)

    op.create_table('alarms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('active_key', sa.String(length=64), nullable=True),
    sa.Column('opened_at', controller.db.types.UTCDateTime(), nullable=False),
    sa.Column('acknowledged_at', controller.db.types.UTCDateTime(), nullable=True),
    sa.Column('acknowledged_by', sa.Integer(), nullable=True),
    sa.Column('ack_note', sa.Text(), nullable=True),
    sa.Column('resolved_at', controller.db.types.UTCDateTime(), nullable=True),
    sa.Column('resolved_by', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['users.id'], name=op.f('fk_alarms_acknowledged_by_users')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_alarms_device_id_devices')),
    sa.ForeignKeyConstraint(['resolved_by'], ['users.id'], name=op.f('fk_alarms_resolved_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarms')),
    sa.UniqueConstraint('active_key', name=op.f('uq_alarms_active_key'))
    )
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alarms_device_id'), ['device_id'], unique=False)
        batch_op.create_index('ix_alarms_state_opened', ['state', 'opened_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_index('ix_alarms_state_opened')
        batch_op.drop_index(batch_op.f('ix_alarms_device_id'))

    op.drop_table('alarms')
    with op.batch_alter_table('telemetry_samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_telemetry_samples_ts'))
        batch_op.drop_index('ix_telemetry_samples_device_ts')

    op.drop_table('telemetry_samples')
    with op.batch_alter_table('telemetry_rollups', schema=None) as batch_op:
        batch_op.drop_index('uq_telemetry_rollups_key')
        batch_op.drop_index(batch_op.f('ix_telemetry_rollups_bucket_start'))

    op.drop_table('telemetry_rollups')
