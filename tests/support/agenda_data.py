"""Plays for the schedules page's agenda, planted in a panel's database: a daily schedule at
00:00 (today's occurrence is always past, whatever time the test runs) with what the stations
reported, and a one-off bulletin later today (or just after midnight if the test runs late).

Why straight into the database: the agenda reads the schedule engine and the play log; how
those rows are written (policy, the stations' events) has its own tests.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from controller.db.models import Broadcast, Delivery, Media, PlayLog
from controller.db.models_schedules import Schedule
from controller.db.statuses import BroadcastStatus, PlayStatus, ScheduleStatus
from controller.services import recurrence
from controller.services.broadcasts import item_id_for

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MIDNIGHT_TITLE = "Bản tin nửa đêm"
LATER_TITLE = "Thông báo tiêm phòng"
OTHER_TITLE = "Thông báo riêng Xuân Hòa"


def plant(rt: Any, ids: dict[str, Any]) -> dict[str, Any]:
    """`ids` from Panel.seed: the midnight schedule reaches every station; at 00:00 today one
    Hợp Hòa station played it, one Xuân Hòa station missed it. A bulletin in an hour for
    Hợp Hòa, and one for Xuân Hòa only (a Hợp Hòa operator must not see it)."""
    now = datetime.now(UTC)
    today = now.astimezone(TZ).date()
    sha = secrets.token_hex(32)
    with rt.db.session() as s:
        s.add(Media(sha256=sha, original_name="Bản tin.mp3", content_type="audio/ogg", size=1000,
                    duration_s=120.0, codec="opus", source_sha256=sha))  # fmt: skip
        sc = Schedule(title=MIDNIGHT_TITLE, media=[sha], duration_s=120.0,
                      rrule="FREQ=DAILY;BYHOUR=0;BYMINUTE=0",
                      dtstart=datetime.combine(today - timedelta(days=3), time(0)).isoformat(),
                      timezone=str(TZ), targets={"all": True}, status=ScheduleStatus.ACTIVE)  # fmt: skip
        s.add(sc)
        s.flush()
        at = datetime.combine(today, time(0), TZ).astimezone(UTC)
        item = recurrence.item_id(sc.id, at)
        hop_hoa, xuan_hoa = ids["devices"][ids["hop_hoa"]][0], ids["devices"][ids["xuan_hoa"]][0]
        s.add_all([
            PlayLog(device_id=hop_hoa, item_id=item, status=PlayStatus.PLAYED, started_at=at,
                    finished_at=at + timedelta(minutes=2)),
            PlayLog(device_id=xuan_hoa, item_id=item, status=PlayStatus.MISSED, reason="offline"),
        ])  # fmt: skip
        later = (now + timedelta(hours=1)).replace(second=0, microsecond=0)
        for title, commune in ((LATER_TITLE, ids["hop_hoa"]), (OTHER_TITLE, ids["xuan_hoa"])):
            bc = Broadcast(title=title, media=[sha], start_at=later, duration_s=120.0,
                           targets={"communes": [commune]}, status=BroadcastStatus.SCHEDULED)  # fmt: skip
            s.add(bc)
            s.flush()  # a broadcast's stations are its deliveries (as services/broadcasts.create)
            s.add_all(Delivery(broadcast_id=bc.id, device_id=d, item_id=item_id_for(bc.id))
                      for d in ids["devices"][commune])  # fmt: skip
        return {"schedule": sc.id, "item": item, "later": later, "today": today}
