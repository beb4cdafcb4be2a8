"""audio pipeline: loudness, true peak, warnings and origin of each media file

Revision ID: 0002_audio
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_audio"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("loudness_lufs", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("true_peak_dbtp", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("source_loudness_lufs", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("normalization", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("origin", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        for name in ("origin", "warnings", "normalization", "source_loudness_lufs", "true_peak_dbtp",
                     "loudness_lufs"):
            batch_op.drop_column(name)
