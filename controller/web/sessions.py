"""Browser sessions, CSRF tokens and the failed-login lockout.

- The session cookie holds a random token; the database keeps only its SHA-256.
  Cookie flags: HttpOnly, SameSite=Lax, Path=/, Secure when the request arrived over
  HTTPS (or `COMMUNECAST_COOKIE_SECURE=true` behind a TLS proxy).
- Every form carries a CSRF token: the session's own for logged-in users; for the login
  form (no session yet) a double-submit token kept in a short-lived cookie.
- After `login_max_failures` wrong passwords for one username inside the lockout
  window, that username is locked for `login_lockout_minutes` (right or wrong password).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.core.config import Settings
from controller.core.security import hash_password, token_digest, verify_password
from controller.db.models import User
from controller.db.models_web import LoginThrottle, WebSession

SESSION_COOKIE = "cc_session"
LOGIN_CSRF_COOKIE = "cc_login_csrf"
MIN_PASSWORD_LEN = 10


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    error: str | None  # a catalog msgid for the login page
    locked_minutes: int = 0


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


def authenticate(s: Session, settings: Settings, username: str, password: str,
                 *, now: datetime | None = None) -> LoginResult:
    """Check a password under the lockout rules; records the failure or clears the counter."""
    now = now or datetime.now(UTC)
    username = username.strip()[:64]
    window = timedelta(minutes=settings.login_lockout_minutes)
    throttle = s.get(LoginThrottle, username)
    if throttle and throttle.locked_until and throttle.locked_until > now:
        minutes = max(1, int((throttle.locked_until - now).total_seconds() // 60) + 1)
        return LoginResult(None, "locked", minutes)
    user = s.scalars(select(User).where(User.username == username)).first()
    if user is not None and user.active and verify_password(password, user.password_hash):
        if throttle is not None:
            s.delete(throttle)
        return LoginResult(user, None)
    if throttle is None:
        throttle = LoginThrottle(username=username, failures=0)
        s.add(throttle)
    if throttle.first_failure_at is None or now - throttle.first_failure_at > window:
        throttle.failures, throttle.first_failure_at, throttle.locked_until = 0, now, None
    throttle.failures += 1
    if throttle.failures >= settings.login_max_failures:
        throttle.locked_until = now + window
        throttle.failures, throttle.first_failure_at = 0, None
        return LoginResult(None, "locked", settings.login_lockout_minutes)
    return LoginResult(None, "bad_credentials")


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
    """Returns an error msgid, or None after changing it (other sessions are logged out)."""
    if not verify_password(current, user.password_hash):
        return "Mật khẩu hiện tại không đúng."
    if len(new) < MIN_PASSWORD_LEN:
        return "Mật khẩu mới phải có ít nhất 10 ký tự."
    if new == current:
        return "Mật khẩu mới phải khác mật khẩu hiện tại."
    user.password_hash = hash_password(new)
    s.execute(delete(WebSession).where(WebSession.user_id == user.id, WebSession.id != keep_session_id))
    return None
