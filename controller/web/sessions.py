"""Browser sessions, CSRF tokens and the failed-login lockout.

- The session cookie holds a random token; the database keeps only its SHA-256.
  Cookie flags: HttpOnly, SameSite=Lax, Path=/, Secure when the request arrived over
  HTTPS (or `COMMUNECAST_COOKIE_SECURE=true` behind a TLS proxy).
- Every form carries a CSRF token: the session's own for logged-in users; for the login
  form (no session yet) a double-submit token kept in a short-lived cookie.
- Failed logins earn progressive waits per username and per client address, the same
  rule as the API's token route: controller/services/auth.py.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.core.config import Settings
from controller.core.security import hash_password, token_digest, verify_password
from controller.db.models import User
from controller.db.models_web import WebSession
from controller.services.auth import revoke_tokens

SESSION_COOKIE = "cc_session"
LOGIN_CSRF_COOKIE = "cc_login_csrf"
MIN_PASSWORD_LEN = 10


def secure_cookies(request: Request, settings: Settings) -> bool:
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def set_cookie(response: Response, request: Request, settings: Settings, name: str, value: str,
               max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="lax",
        secure=secure_cookies(request, settings),
    )  # fmt: skip


def start_session(s: Session, settings: Settings, user: User) -> str:
    now = datetime.now(UTC)
    s.execute(delete(WebSession).where(WebSession.user_id == user.id, WebSession.expires_at < now))
    token = secrets.token_urlsafe(32)
    s.add(WebSession(
        token_hash=token_digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
        expires_at=now + timedelta(hours=settings.session_ttl_hours),
    ))  # fmt: skip
    return token


def load_session(s: Session, token: str | None) -> WebSession | None:
    if not token:
        return None
    row = s.scalars(select(WebSession).where(WebSession.token_hash == token_digest(token))).first()
    if row is None or row.expires_at <= datetime.now(UTC) or not row.user.active:
        return None
    return row


def end_session(s: Session, token: str | None) -> None:
    if token:
        s.execute(delete(WebSession).where(WebSession.token_hash == token_digest(token)))


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def change_password(s: Session, user: User, current: str, new: str, keep_session_id: int) -> str | None:
    """Returns an error msgid, or None after changing it (other sessions and API tokens end)."""
    if not verify_password(current, user.password_hash):
        return "Mật khẩu hiện tại không đúng."
    if len(new) < MIN_PASSWORD_LEN:
        return "Mật khẩu mới phải có ít nhất 10 ký tự."
    if new == current:
        return "Mật khẩu mới phải khác mật khẩu hiện tại."
    user.password_hash = hash_password(new)
    s.execute(delete(WebSession).where(WebSession.user_id == user.id, WebSession.id != keep_session_id))
    revoke_tokens(s, user.id)  # an API token is a password-equivalent: it goes too
    return None
