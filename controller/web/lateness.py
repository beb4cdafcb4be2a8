"""One sentence per late station for the panel: how late, and why (services/lateness.py).

The API returns the cause as a code with its timestamps; a person reads this instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.numbers import format_decimal
from sqlalchemy.orm import Session

from controller.db.models import Broadcast
from controller.i18n import formats
from controller.services import broadcast_status
from controller.web.i18n import gettext_for

# The msgids per cause; the test of English translations reads this table.
CAUSES = {
    "started_late": ("Trạm đã nhận lệnh kịp giờ nhưng bắt đầu trễ "
                     "(đang chuẩn bị âm thanh hoặc loa bận phát tin ưu tiên hơn)."),
    "broker_unreachable": "Máy chủ MQTT không trả lời từ {since} đến {until}: lệnh không gửi được đến trạm.",
    "broker_unreachable_open": ("Máy chủ MQTT không trả lời từ {since} và vẫn chưa trả lời: "
                                "lệnh không gửi được đến trạm."),
    "sent_late": "Bộ điều khiển gửi lệnh sau giờ phát (bộ điều khiển ngừng chạy hoặc bị dồn việc).",
    "received_late": "Trạm nhận lệnh lúc {at}, sau giờ phát (trạm mất kết nối hoặc đường truyền chậm).",
    "not_received": "Trạm chưa nhận được lệnh (trạm mất kết nối hoặc đường truyền chậm).",
}
HOW_LATE = "Phát trễ {seconds} giây."
NOT_STARTED = "Chưa phát."


def describe(lateness: dict[str, Any], tz: str, lang: str) -> str:
    """'Phát trễ 10,3 giây. Máy chủ MQTT không trả lời từ 10:00:05 đến 10:00:25: ...'"""
    _ = gettext_for(lang)
    locale = lang if lang in ("vi", "en") else "vi"

    def at(value: str | None) -> str:
        instant = datetime.fromisoformat(value) if value else None
        return formats.date_time(instant, tz, seconds=True, lang=locale)

    late_ms = lateness.get("late_ms")
    head = (_(HOW_LATE, seconds=format_decimal(round(late_ms / 1000, 1), locale=locale))
            if late_ms is not None else _(NOT_STARTED))  # fmt: skip
    cause = lateness["cause"]
    if cause == "broker_unreachable":
        if lateness.get("outage_to"):
            why = _(CAUSES[cause], since=at(lateness["outage_from"]), until=at(lateness["outage_to"]))
        else:
            why = _(CAUSES["broker_unreachable_open"], since=at(lateness["outage_from"]))
    elif cause == "received_late":
        received = lateness.get("received_at")
        why = _(CAUSES[cause], at=at(received)) if received else _(CAUSES["not_received"])
    else:
        why = _(CAUSES.get(cause, cause))
    return f"{head} {why}"


def late_stations(
    s: Session, bc: Broadcast, scope: set[int] | None, tz: str, lang: str
) -> list[dict[str, Any]]:
    """The stations of `bc` in the viewer's area (`scope`: commune ids, None for all) that
    started late or not at all, each with its sentence."""
    late = [x for x in broadcast_status.station_states(s, bc, communes=scope) if x["lateness"]]
    return [{"device_id": x["device_id"], "name": x["name"] or x["uid"],
             "text": describe(x["lateness"], tz, lang)} for x in late]  # fmt: skip
