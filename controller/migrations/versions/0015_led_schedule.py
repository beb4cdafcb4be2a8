"""LED messages: recurring windows (RRULE) like audio schedules

Revision ID: 0015_led_schedule
Revises: 0003_led
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015_led_schedule'
down_revision = '0003_led'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('led_messages') as batch:
        batch.add_column(sa.Column('rrule', sa.Text(), nullable=True))
        batch.add_column(sa.Column('dtstart', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('until', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('exdates', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('show_s', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('led_messages') as batch:
        for name in ('show_s', 'timezone', 'exdates', 'until', 'dtstart', 'rrule'):
            batch.drop_column(name)
