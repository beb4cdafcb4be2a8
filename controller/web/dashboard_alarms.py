"""Open alarms on the dashboard: how many, and the newest few, in the user's area.

The dashboard renders this once and the SSE stream (`/panel/stream`, routes.py) sends it
again with the counts, so the page and its live updates always show the same thing. The
rows are formatted here (language, local time) so the page's script only copies text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controller.core.i18n import has_message, t
from controller.db.models import Device
from controller.db.models_health import Alarm
from controller.db.statuses import ACTIVE_ALARM, AlarmState
from controller.services.alarms.engine import list_alarms
from controller.web.i18n import fmt_dt, gettext_for

NEWEST = 5
STATE_WORDS = {AlarmState.OPEN: "Đang mở", AlarmState.ACKNOWLEDGED: "Đã xác nhận"}


def open_alarms(s: Session, scope: set[int] | None, lang: str, tz: str) -> dict[str, Any]:
    """Alarms not yet resolved (open or acknowledged) on the stations the user may see."""
    _ = gettext_for(lang)
    q = (select(Alarm.state, func.count()).join(Device, Device.id == Alarm.device_id)
         .where(Alarm.state.in_(ACTIVE_ALARM)).group_by(Alarm.state))  # fmt: skip
    if scope is not None:
        q = q.where(Device.commune_id.in_(scope))
    by_state = {state: int(n) for state, n in s.execute(q)}
    newest = list_alarms(s, state="active", device_id=None, kind=None, limit=NEWEST, communes=scope)
    rows = [{
        "id": a["id"], "device_id": a["device_id"], "device": a["device_name"] or a["device_uid"] or "",
        "kind": _kind(a["kind"], lang), "since": fmt_dt(datetime.fromisoformat(a["opened_at"]), tz),
        "state": a["state"], "state_label": _(STATE_WORDS.get(a["state"], a["state"])),
    } for a in newest]  # fmt: skip
    return {"active": sum(by_state.values()), "unacknowledged": by_state.get(AlarmState.OPEN, 0),
            "newest": rows}


def _kind(kind: str, lang: str) -> str:
    key = f"alarm.kind.{kind}"
    return t(key, lang) if has_message(key) else kind
