"""Broadcast policy per commune (docs/schedules.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session
from controller.api.params import Id
from controller.core.errors import NotFound
from controller.core.permissions import covers
from controller.db.models import User
from controller.db.models_schedules import CommunePolicy
from controller.schemas.common import NOT_FOUND
from controller.schemas.schedules import PolicyOut
from controller.services import policy

router = APIRouter(prefix="/api/v1", tags=["policy"])


@router.put("/communes/{commune_id}/policy", response_model=PolicyOut, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def put_policy(
    commune_id: Id, req: policy.PolicyIn, user: User = Depends(current_user),
    s: Session = Depends(db_session),
) -> dict[str, Any]:
    p = policy.put(s, commune_id, req, user)
    s.commit()
    return PolicyOut.body(p, commune_id)


@router.get("/communes/{commune_id}/policy", response_model=PolicyOut, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def get_policy(
    commune_id: Id, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> dict[str, Any]:
    """Another area's policy is not found (a commune operator reads their own commune's)."""
    if not covers(s, user, commune_id):
        raise NotFound("policy.no_commune", id=commune_id)
    return PolicyOut.body(s.get(CommunePolicy, commune_id), commune_id)
