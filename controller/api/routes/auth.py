from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, runtime
from controller.core.errors import UserError
from controller.core.security import new_token, token_digest, verify_password
from controller.db.models import ApiToken, User
from controller.runtime import Runtime

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token")
def issue_token(
    form: OAuth2PasswordRequestForm = Depends(),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, object]:
    user = s.scalars(select(User).where(User.username == form.username)).first()
    if user is None or not user.active or not verify_password(form.password, user.password_hash):
        raise UserError(401, "auth.bad_credentials")
    now = datetime.now(UTC)
    s.execute(delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at < now))
    token = new_token()
    ttl = timedelta(hours=rt.settings.token_ttl_hours)
    s.add(ApiToken(token_hash=token_digest(token), user_id=user.id, expires_at=now + ttl))
    s.commit()
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": int(ttl.total_seconds()),
    }


@router.get("/me")
def me(user: User = Depends(current_user)) -> dict[str, object]:
    return {"id": user.id, "username": user.username, "role": user.role, "area_id": user.area_id}
