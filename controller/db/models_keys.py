"""The controller's signing keys (docs/security.md, key rotation): public halves, the signed chain
links and revocations. Private halves never enter the database: data_dir/keys/ring/<kid>.pem.

Every replica reads this table to sign with the same key and to publish the same chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, utcnow
from controller.db.types import UTCDateTime


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    # The key it follows; unique: a key has at most one successor (two rotations racing from the
    # same key make the second fail instead of forking the chain). None for the first key.
    prev_kid: Mapped[str | None] = mapped_column(String(16), unique=True)
    link: Mapped[str | None] = mapped_column(Text)  # wire JSON of the KeyLink, signed by prev_kid
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when a successor is made: messages signed by this key are accepted until then.
    retire_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revocation: Mapped[str | None] = mapped_column(Text)  # wire JSON of the KeyRevocation
    revoked_by: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
