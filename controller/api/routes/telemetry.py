"""A station's telemetry as a time series: raw samples or 5-minute rollups (docs/health.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, runtime
from controller.api.params import Id
from controller.core.errors import NotFound, UserError
from controller.core.permissions import covers
from controller.db.models import Device, User
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND
from controller.schemas.telemetry import Series
from controller.services import telemetry

router = APIRouter(prefix="/api/v1", tags=["telemetry"])


def _instant(value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        dt = datetime.fromisoformat(value.replace(" ", "+"))  # a '+' in a query string arrives as ' '
    except ValueError:
        raise UserError(422, "telemetry.bad_range") from None
    if dt.tzinfo is None:
        raise UserError(422, "telemetry.bad_range")
    return dt.astimezone(UTC)


@router.get("/devices/{device_id}/telemetry", response_model=Series, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def device_telemetry(
    device_id: Id,
    metric: str,
    from_: str | None = Query(default=None, alias="from"),
    to: str | None = None,
    step: str = "auto",
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """`from`/`to` ISO-8601 with offset (default: the last 6 hours); step raw|5m|15m|1h|6h|1d|auto."""
    device = s.get(Device, device_id)
    if device is None or not covers(s, user, device.commune_id):  # outside the user's area: not theirs
        raise NotFound("device.not_found", id=device_id)
    if metric not in telemetry.METRICS:
        raise UserError(422, "telemetry.bad_metric", metric=metric, known=", ".join(telemetry.METRICS))
    if step != "auto" and step not in telemetry.STEPS:
        raise UserError(422, "telemetry.bad_step", step=step, known=", ".join(["auto", *telemetry.STEPS]))
    now = datetime.now(UTC)
    end = _instant(to, now)
    start = _instant(from_, end - timedelta(hours=6))
    if end <= start:
        raise UserError(422, "telemetry.bad_range")
    chosen = telemetry.choose_step(step, start, end, rt.settings.telemetry_raw_days, now)
    if chosen != "raw":
        points = (end - start).total_seconds() / telemetry.STEPS[chosen]
        if points > telemetry.MAX_POINTS:
            raise UserError(422, "telemetry.too_many_points", step=chosen, points=int(points),
                            max=telemetry.MAX_POINTS)  # fmt: skip
    series = telemetry.query(s, device_id, metric, start, end, chosen)
    return {"device_id": device_id, "metric": metric, "step": series.step, "from": start.isoformat(),
            "to": end.isoformat(), "points": series.points}  # fmt: skip
