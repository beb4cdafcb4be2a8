"""Rows for the calendar's tests (the month view, moving a one-off bulletin), planted in a
panel's database next to what `agenda_data.plant` puts there.

Why straight into the database: the month view reads the schedule engine and the play log,
and a move reads a broadcast and its deliveries; how those rows are written (sending, the
stations' events) has its own tests. A broadcast's stations are its deliveries, as
services/broadcasts.create records them.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select

from controller.db.models import Broadcast, Delivery, Media, PlayLog, User
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.models_schedules import CommunePolicy
from controller.db.statuses import BroadcastStatus, EmergencyStatus, PlayStatus
from controller.services.broadcasts import item_id_for
from tests.support.agenda_data import TZ

MINUTES = 2.0  # every recording here lasts two minutes


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local wall time (Asia/Ho_Chi_Minh) as an aware UTC instant."""
    return datetime.combine(day, time(hour, minute), TZ).astimezone(UTC)


def media(rt: Any) -> str:
    sha = secrets.token_hex(32)
    with rt.db.session() as s:
        s.add(Media(sha256=sha, original_name="Thông báo.mp3", content_type="audio/ogg", size=1000,
                    duration_s=MINUTES * 60, codec="opus", source_sha256=sha))  # fmt: skip
    return sha


def user_id(rt: Any, username: str) -> int:
    with rt.db.session() as s:
        return int(s.scalars(select(User.id).where(User.username == username)).one())


def bulletin(rt: Any, ids: dict[str, Any], sha: str, title: str, start: datetime, communes: list[int] | None,
             *, status: str = BroadcastStatus.SCHEDULED, priority: str = "normal", emergency: bool = False,
             by: int | None = None) -> int:  # fmt: skip
    """A one-off broadcast to these communes (None: every station, targets "all"), its deliveries
    and, for `emergency`, the emergency row its fan-out leaves."""
    targets: dict[str, Any] = {"all": True} if communes is None else {"communes": communes}
    stations = [d for c in (communes or [ids["hop_hoa"], ids["kim_long"], ids["xuan_hoa"]])
                for d in ids["devices"][c]]  # fmt: skip
    with rt.db.session() as s:
        bc = Broadcast(title=title, media=[sha], start_at=start, duration_s=MINUTES * 60, targets=targets,
                       status=status, priority=priority, created_by=by)  # fmt: skip
        s.add(bc)
        s.flush()
        s.add_all(Delivery(broadcast_id=bc.id, device_id=d, item_id=item_id_for(bc.id)) for d in stations)
        if emergency:
            stopped = status == BroadcastStatus.CANCELLED
            s.add(EmergencyBroadcast(broadcast_id=bc.id, lead_ms=1500.0, topics=[],
                                     status=EmergencyStatus.CANCELLED if stopped else EmergencyStatus.ACTIVE))
        return int(bc.id)


def played(rt: Any, device_id: int, item_id: str, status: PlayStatus, *, broadcast_id: int | None = None,
           at: datetime | None = None) -> None:  # fmt: skip
    """What a station reported for one item (proof of play)."""
    with rt.db.session() as s:
        s.add(PlayLog(device_id=device_id, item_id=item_id, broadcast_id=broadcast_id, status=status,
                      started_at=at, reason="offline" if status == PlayStatus.MISSED else None))  # fmt: skip


def policy(rt: Any, commune_id: int, *, hours: tuple[str, str] = ("06:00", "20:00"),
           per_day: int | None = None) -> None:  # fmt: skip
    with rt.db.session() as s:
        s.add(CommunePolicy(commune_id=commune_id, allowed_hours=[list(hours)], days=[],
                            max_minutes_per_day=per_day))  # fmt: skip


def start_of(rt: Any, broadcast_id: int) -> tuple[datetime, str]:
    """(start, status) of a broadcast as stored now."""
    with rt.db.session() as s:
        bc = s.get(Broadcast, broadcast_id)
        assert bc is not None
        return bc.start_at, str(bc.status)
