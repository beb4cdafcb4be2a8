"""Web panel tables: browser sessions and the failed-login counters behind the login waits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controller.db.models import Base, User, utcnow
from controller.db.types import UTCDateTime


class WebSession(Base):
    """A logged-in browser. Only the SHA-256 of the cookie value is stored (like API tokens)."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class LoginThrottle(Base):
    """Failed logins per account and per client address (controller/services/auth.py).

    A row is forgotten (purged) at `forget_at`: a while after its last failure and wait,
    so a typo last week does not count against anyone today."""

    __tablename__ = "login_throttle"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # "account" or "address"
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)  # username or address
    failures: Mapped[int] = mapped_column(Integer, default=0)
    wait_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    forget_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
