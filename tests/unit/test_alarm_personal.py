"""Quiet hours and the SMS text of per-user alarms (services/alarms/personal.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from controller.services.alarms.notify import AlarmNote
from controller.services.alarms.personal import in_quiet_hours, parse_hhmm, sms_text


@pytest.mark.parametrize(("now", "start", "end", "quiet"), [
    ("23:30", "22:00", "06:00", True), ("05:59", "22:00", "06:00", True), ("06:00", "22:00", "06:00", False),
    ("12:00", "22:00", "06:00", False), ("13:00", "12:00", "14:00", True), ("14:00", "12:00", "14:00", False),
    ("03:00", None, None, False), ("03:00", "22:00", "22:00", False),
])  # fmt: skip
def test_quiet_hours_wrap_midnight(now: str, start: str | None, end: str | None, quiet: bool) -> None:
    assert in_quiet_hours(parse_hhmm(now) or time(), parse_hhmm(start), parse_hhmm(end)) is quiet


@pytest.mark.parametrize("bad", ["7h", "25:00", "06:60", "6:5", "ab:cd"])
def test_bad_times_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(bad)


def test_sms_text_fits_one_sms_with_the_time_first() -> None:
    name = "Cụm loa số 12 đầu cầu Hoà Bình – Xã Thượng Trạch, Tỉnh Quảng Trị"
    opened = datetime(2026, 12, 6, 15, 15, tzinfo=UTC)
    note = AlarmNote("opened", 1, 2, "spk-0002", name, "offline", "open", opened)
    text = sms_text(note, "Asia/Ho_Chi_Minh")
    assert text.startswith("Cảnh báo 22:15 06/12: Trạm mất kết nối – Cụm loa số 12")
    assert len(text) == 70 and text.endswith("…")
