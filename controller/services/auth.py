"""Logins for the panel and the API: one throttle, one password check, token revocation.

Why progressive waits and not a lockout: a fixed lockout lets anyone who knows an
operator's username keep them out. Here every failure is counted twice, per username and
per client address, and each count earns a wait that doubles with further failures:
the account's wait is capped low (`login_max_delay_s`, 5 min) so a stranger can only
delay the operator that long, the address's wait high (`login_address_max_delay_s`, 1 h)
so the stranger's own address guesses slowly. During a wait nothing is checked — a right
password gets the same 429 as a wrong one. Unknown and deactivated usernames cost one
scrypt like known ones, so the reply time does not tell which usernames exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from controller.core.config import Settings
from controller.core.errors import RetryLater, UserError
from controller.core.security import dummy_hash, token_digest, verify_password
from controller.db.models import ApiToken, User
from controller.db.models_web import LoginThrottle

ACCOUNT, ADDRESS = "account", "address"
SUBJECT_LEN = 64


def login_now() -> datetime:
    """The login clock, a FastAPI dependency so tests can move time instead of waiting."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Rule:
    """`free` failures cost nothing; then `base_s`, doubling per further failure, up to `max_s`."""

    free: int
    base_s: float
    max_s: float

    def wait_after(self, failures: int) -> float:
        if failures <= self.free:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** min(failures - self.free - 1, 40))


def rules(settings: Settings) -> dict[str, Rule]:
    return {
        ACCOUNT: Rule(settings.login_max_failures, settings.login_delay_s, settings.login_max_delay_s),
        ADDRESS: Rule(settings.login_address_max_failures, settings.login_delay_s,
                      settings.login_address_max_delay_s),
    }  # fmt: skip


@dataclass(frozen=True)
class LoginOutcome:
    """A user, or why not: `retry_after_s` > 0 means wait that long (429), else wrong (401)."""

    user: User | None
    retry_after_s: int = 0

    def error(self) -> UserError:
        if self.retry_after_s > 0:
            return RetryLater("auth.throttled", self.retry_after_s)
        return UserError(401, "auth.bad_credentials")


def login(
    s: Session, settings: Settings, username: str, password: str, address: str, *, now: datetime
) -> LoginOutcome:
    """Check a password under the waits; records the failure or clears the account's count.

    The caller commits in both cases (failures must be kept even though the login fails);
    until then this attempt holds the account's and the address's counters, so parallel
    guesses are checked one after another and a burst gets no more checks than a sequence.
    """
    username = username.strip()[:SUBJECT_LEN]
    forget = timedelta(seconds=settings.login_forget_s)
    purge(s, now)
    rows = _lock_counters(s, username, (address or "unknown")[:SUBJECT_LEN], now + forget)
    wait = max(_remaining(row, now) for row in rows.values())
    if wait > 0:
        return LoginOutcome(None, wait)  # no password check at all: the answer says nothing
    user = s.scalars(select(User).where(User.username == username)).first()
    ok = verify_password(password, user.password_hash if user is not None else dummy_hash())
    if ok and user is not None and user.active:
        s.delete(rows[ACCOUNT])  # the owner proved it; the address keeps its count
        return LoginOutcome(user)
    waits = []
    for kind, rule in rules(settings).items():
        row = rows[kind]
        row.failures += 1
        seconds = rule.wait_after(row.failures)
        row.wait_until = now + timedelta(seconds=seconds) if seconds else None
        row.forget_at = (row.wait_until or now) + forget
        waits.append(math.ceil(seconds))
    return LoginOutcome(None, max(waits))


def _lock_counters(s: Session, username: str, address: str, forget_at: datetime) -> dict[str, LoginThrottle]:
    """Create the two counters if missing, then lock them (account first, always, so two
    attempts never wait on each other crosswise). SQLite has one writer: the insert locks."""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[s.get_bind().dialect.name]
    rows: dict[str, LoginThrottle] = {}
    for kind, subject in ((ACCOUNT, username), (ADDRESS, address)):
        s.execute(
            insert(LoginThrottle)
            .values(kind=kind, subject=subject, failures=0, forget_at=forget_at)
            .on_conflict_do_nothing(index_elements=["kind", "subject"])
        )
        rows[kind] = s.scalars(
            select(LoginThrottle)
            .where(LoginThrottle.kind == kind, LoginThrottle.subject == subject)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
    return rows


def _remaining(row: LoginThrottle, now: datetime) -> int:
    if row.wait_until is None or row.wait_until <= now:
        return 0
    return math.ceil((row.wait_until - now).total_seconds())


def purge(s: Session, now: datetime) -> int:
    """Delete counters whose time is up; runs on every login attempt. Rows another attempt
    holds are skipped (PostgreSQL), so purging never makes logins wait on each other."""
    stale = (
        select(LoginThrottle.kind, LoginThrottle.subject)
        .where(LoginThrottle.forget_at <= now)
        .with_for_update(skip_locked=True)
    )
    key = tuple_(LoginThrottle.kind, LoginThrottle.subject)
    return s.execute(delete(LoginThrottle).where(key.in_(stale))).rowcount or 0


def revoke_tokens(s: Session, user_id: int) -> None:
    """Every API token of this user stops working (password change, deactivation)."""
    s.execute(delete(ApiToken).where(ApiToken.user_id == user_id))


def revoke_token(s: Session, token: str) -> None:
    s.execute(delete(ApiToken).where(ApiToken.token_hash == token_digest(token)))


def user_for_token(s: Session, token: str | None, now: datetime) -> User | None:
    """The active user a bearer token belongs to, or None (expired, revoked, deactivated)."""
    if not token:
        return None
    row = s.scalars(select(ApiToken).where(ApiToken.token_hash == token_digest(token))).first()
    if row is None or row.expires_at <= now or not row.user.active:
        return None
    return row.user
