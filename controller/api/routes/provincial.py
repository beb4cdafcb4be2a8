"""GET /api/v1/provincial/status: is the province getting our status and play logs?"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from controller.api.deps import db_session, lang, require_role, runtime
from controller.core.i18n import t
from controller.core.permissions import Action, roles_with
from controller.db.models import User
from controller.i18n import formats
from controller.runtime import Runtime
from controller.schemas.provincial import ProvincialStatus
from controller.services.provincial import outbox
from controller.services.provincial.config import ProvincialSettings

router = APIRouter(prefix="/api/v1/provincial", tags=["provincial"])


def _local(dt: datetime | None, tz: str) -> str | None:
    return formats.date_time(dt, tz, seconds=True) if dt is not None else None


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


@router.get("/status", response_model=ProvincialStatus, response_model_exclude_unset=True)
def status(
    request: Request, rt: Runtime = Depends(runtime),
    _: User = Depends(require_role(*roles_with(Action.REPORT_VIEW))), s: Session = Depends(db_session),
) -> dict[str, Any]:
    """Queue depth, last success and the last error (in the caller's language), from any replica."""
    connector = getattr(rt, "provincial", None)
    settings: ProvincialSettings = connector.settings if connector is not None else ProvincialSettings()
    st = outbox.state(s)
    error = None
    if st is not None and st.last_error_key:
        params = json.loads(st.last_error_detail or "{}")
        error = {"code": st.last_error_key, "message": t(st.last_error_key, lang(request), **params),
                 "at": _iso(st.last_error_at), "at_local": _local(st.last_error_at, rt.settings.timezone)}
    healthy = st is not None and st.last_success_at is not None and (
        st.last_error_at is None or st.last_success_at >= st.last_error_at)
    return {
        "enabled": settings.enabled and connector is not None,
        "base_url": settings.base_url,
        "interval_s": settings.interval_s,
        "this_replica_sends": bool(connector is not None and connector.sending),
        "retry_in_s": connector.retry_in() if connector is not None else None,
        "queue": outbox.depth(s),
        "healthy": healthy,
        "last_success_at": _iso(st.last_success_at) if st else None,
        "last_success_local": _local(st.last_success_at, rt.settings.timezone) if st else None,
        "last_attempt_at": _iso(st.last_attempt_at) if st else None,
        "last_login_at": _iso(st.last_login_at) if st else None,
        "logins": st.logins if st else 0,
        "delivered": {"status": st.delivered_status if st else 0,
                      "play_log": st.delivered_play_log if st else 0},
        "last_error": error,
    }  # fmt: skip
