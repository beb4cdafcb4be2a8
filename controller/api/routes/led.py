from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from controller.api.deps import OPERATOR_ROLES, current_user, db_session, lang, require_role, runtime
from controller.api.params import Id, Limit
from controller.db.models import User
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND, StatusOut, binary
from controller.schemas.led import LedHealth, LedMessageCreated, LedMessageOut
from controller.services import led
from controller.usecases import led as usecase

router = APIRouter(prefix="/api/v1", tags=["led"])


@router.post("/led-messages", status_code=201, response_model=LedMessageCreated,
             response_model_exclude_unset=True)
def create_led_message(
    req: led.LedMessageCreate,
    response: Response,
    request: Request,
    user: User = Depends(require_role(*OPERATOR_ROLES)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    row, device_ids, info = usecase.compose(s, user, req, lang=lang(request))  # checks the right and the area
    if row is None:
        response.status_code = 200
        return {"id": None, "dry_run": True, **info}
    s.commit()
    return LedMessageOut.body(row) | {"boards": len(device_ids), **info}


@router.get("/led-messages", response_model=list[LedMessageOut], response_model_exclude_unset=True)
def list_led_messages(
    limit: Limit = 100, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> list[dict[str, Any]]:
    """Newest first: the texts that reach a board in the caller's area."""
    return [LedMessageOut.body(m) for m in usecase.visible(s, user, limit)]


@router.post("/led-messages/{message_id}/cancel", response_model=StatusOut, response_model_exclude_unset=True,
             responses=NOT_FOUND)
def cancel_led_message(
    message_id: Id,
    user: User = Depends(require_role(*OPERATOR_ROLES)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    usecase.cancel(s, user, message_id)  # only a text they could have sent
    s.commit()
    return {"id": message_id, "status": "cancelled"}


@router.get("/devices/{device_id}/preview.png", response_class=Response,
            responses=binary("what the board shows now", "image/png"))
def board_preview(
    device_id: Id, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> Response:
    png = led.preview_png(led.board(s, device_id, user))
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/devices/{device_id}/led-health", response_model=LedHealth, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def board_health(
    device_id: Id, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> dict[str, Any]:
    return led.health(led.board(s, device_id, user))
