"""Relays of an allow-listed radio stream for a window (docs/live.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, lang, require_role, runtime
from controller.api.params import Id, Limit
from controller.api.refusals import policy_refusal
from controller.api.routes.live import SENDERS
from controller.db.models import User
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND, POLICY_REFUSAL, StatusOut
from controller.schemas.live import RelayOut
from controller.services import relay
from controller.services.broadcasts import item_id_for
from controller.services.policy import PolicyViolation
from controller.usecases import streams

router = APIRouter(prefix="/api/v1", tags=["relay"])


@router.post("/relays", status_code=201, response_model=RelayOut, response_model_exclude_unset=True,
             responses=POLICY_REFUSAL)
def create_relay(
    req: relay.RelayCreate,
    request: Request,
    user: User = Depends(require_role(*SENDERS)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    try:
        ls, device_ids = streams.start_relay(s, user, req, allowed=rt.settings.relay_sources)
    except PolicyViolation as exc:
        return policy_refusal(exc, lang(request))  # type: ignore[return-value]
    s.commit()
    return ls.as_dict() | {"item_id": item_id_for(ls.broadcast_id), "stations": len(device_ids)}


@router.get("/relays", response_model=list[RelayOut], response_model_exclude_unset=True)
def list_relays(
    limit: Limit = 100, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> list[dict[str, Any]]:
    return [ls.as_dict() for ls in streams.relays(s, user, limit)]


@router.get("/relay-sources", response_model=list[str], response_model_exclude_unset=True)
def relay_sources(_: User = Depends(current_user), rt: Runtime = Depends(runtime)) -> list[str]:
    """What an operator may relay (set by the administrator)."""
    return list(rt.settings.relay_sources)


@router.post("/relays/{relay_id}/cancel", response_model=StatusOut, response_model_exclude_unset=True,
             responses=NOT_FOUND)
def cancel_relay(
    relay_id: Id,
    user: User = Depends(require_role(*SENDERS)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    streams.cancel_relay(s, user, relay_id)
    s.commit()
    return {"id": relay_id, "status": "cancelled"}
