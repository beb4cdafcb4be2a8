from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import delete
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, oauth2, runtime
from controller.core.security import new_token, token_digest
from controller.db.models import ApiToken, User
from controller.runtime import Runtime
from controller.schemas.auth import Me, TokenOut
from controller.services import auth
from controller.services.auth import login_now

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenOut, response_model_exclude_unset=True)
def issue_token(
    request: Request,
    form: OAuth2PasswordRequestForm = Depends(),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
    now: datetime = Depends(login_now),
) -> dict[str, object]:
    """The panel's login rule applies: waits per account and per address (429 + Retry-After)."""
    address = request.client.host if request.client else "unknown"
    outcome = auth.login(s, rt.settings, form.username, form.password, address, now=now)
    if outcome.user is None:
        s.commit()  # the failure counts even though the request fails
        raise outcome.error()
    user = outcome.user
    issued = datetime.now(UTC)  # token lifetimes run on the real clock, like current_user
    s.execute(delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at < issued))
    token = new_token()
    ttl = timedelta(hours=rt.settings.token_ttl_hours)
    s.add(ApiToken(token_hash=token_digest(token), user_id=user.id, expires_at=issued + ttl))
    s.commit()
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": int(ttl.total_seconds()),
    }


@router.post("/logout", status_code=204, response_class=Response)
def logout(
    user: User = Depends(current_user),
    token: str | None = Depends(oauth2),
    s: Session = Depends(db_session),
) -> Response:
    """Revokes the token this request presented (other devices keep theirs)."""
    if token:
        auth.revoke_token(s, token)
        s.commit()
    return Response(status_code=204)


@router.get("/me", response_model=Me, response_model_exclude_unset=True)
def me(user: User = Depends(current_user)) -> dict[str, object]:
    return {"id": user.id, "username": user.username, "role": user.role, "area_id": user.area_id}
