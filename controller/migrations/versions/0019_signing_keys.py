"""signing keys: the controller key chain (rotation, revocation)

Revision ID: 0019_signing_keys
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controller.db.types

revision = "0019_signing_keys"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("prev_kid", sa.String(length=16), nullable=True),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("created_at", controller.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retire_at", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", controller.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revocation", sa.Text(), nullable=True),
        sa.Column("revoked_by", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("prev_kid", name=op.f("uq_signing_keys_prev_kid")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
