"""Remote diagnostics of one station: send a closed-enum action, read its result."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, require_role, runtime
from controller.api.params import Id, Limit
from controller.core.permissions import Action, roles_with
from controller.db.models import User
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND
from controller.schemas.diagnostics import DiagnosticOut
from controller.services import diagnostics

router = APIRouter(prefix="/api/v1", tags=["diagnostics"])


@router.post("/devices/{device_id}/diagnostics", status_code=202, response_model=DiagnosticOut,
             response_model_exclude_unset=True, responses=NOT_FOUND)
async def send_diagnostic(
    device_id: Id,
    req: diagnostics.DiagnosticRequest,
    user: User = Depends(require_role(*roles_with(Action.DEVICE_TEST))),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Signed and published at once; poll GET .../diagnostics/{id} for the station's result."""
    row = await diagnostics.send(rt.station_commands, s, user, device_id, req)
    return diagnostics.to_json(row)


@router.get("/devices/{device_id}/diagnostics", response_model=list[DiagnosticOut],
            response_model_exclude_unset=True, responses=NOT_FOUND)
def list_diagnostics(
    device_id: Id,
    limit: Limit = 50,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
) -> list[dict[str, Any]]:
    return [diagnostics.to_json(r) for r in diagnostics.recent(s, user, device_id, limit)]


@router.get("/devices/{device_id}/diagnostics/{command_id}", response_model=DiagnosticOut,
            response_model_exclude_unset=True, responses=NOT_FOUND)
def get_diagnostic(
    device_id: Id,
    command_id: str,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
) -> dict[str, Any]:
    """state: pending | done | error | rejected | expired; result: the station's measurements."""
    return diagnostics.to_json(diagnostics.get(s, user, device_id, command_id))
