"""Request-scoped dependencies: the runtime, a DB session, the caller and their role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.core.i18n import pick_lang
from controller.db.models import User
from controller.runtime import Runtime
from controller.services.auth import user_for_token

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

# Roles that may send to loudspeakers (`district`: the pre-2025 name of `group`, one release).
OPERATOR_ROLES = ("admin", "province", "group", "commune", "operator", "district")


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def lang(request: Request) -> str:
    return pick_lang(request.headers.get("accept-language"))


def db_session(rt: Runtime = Depends(runtime)) -> Iterator[Session]:
    with rt.db.session() as s:
        yield s


def current_user(
    token: str | None = Depends(oauth2), s: Session = Depends(db_session)
) -> User:
    user = user_for_token(s, token, datetime.now(UTC))
    if user is None:
        raise UserError(401, "auth.required")
    return user


def require_role(*roles: str) -> Callable[[User], User]:
    def check(user: User = Depends(current_user)) -> User:
        if user.role not in roles:
            raise UserError(403, "auth.forbidden")
        return user

    return check
