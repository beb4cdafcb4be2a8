"""Recurrence in plain words (issue 7): the builder's rules and hand-written ones, vi and en."""

from __future__ import annotations

from datetime import datetime, time

import pytest
from dateutil.rrule import rrulestr

from controller.services import rrule_text as rt


def test_the_issue_examples_in_vietnamese_and_english() -> None:
    rule = rt.build(mode="days", days=[0, 1, 2, 3, 4, 5], times=rt.parse_times("17:00, 05:30"))
    assert rt.describe(rule) == "Hằng ngày lúc 05:30 và 17:00, trừ Chủ nhật"
    assert rt.describe(rule, lang="en") == "Every day at 05:30 and 17:00, except Sunday"
    hourly = rt.build(mode="hours", every_hours=2, minute=0)
    assert rt.describe(hourly) == "2 giờ một lần, vào đầu giờ, cho đến khi hủy"
    assert rt.describe(hourly, lang="en") == "Every 2 hours, on the hour, until cancelled"
    weekly = "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=6;BYMINUTE=0"
    assert rt.describe(weekly) == "Thứ Hai, Thứ Tư và Thứ Sáu lúc 06:00"
    assert rt.describe(weekly, lang="en") == "Monday, Wednesday and Friday at 06:00"
    assert rt.describe(rt.build(mode="days", days=[0, 2, 4], times=[time(6, 0)])) == (
        "Thứ Hai, Thứ Tư và Thứ Sáu lúc 06:00")


def test_builder_rules_expand_to_exactly_the_chosen_times() -> None:
    """BYHOUR x BYMINUTE would give 05:00, 05:30, 17:00, 17:30: BYSETPOS keeps the two chosen."""
    rule = rt.build(mode="days", days=[0, 1, 2, 3, 4, 5], times=[time(5, 30), time(17, 0)])
    got = list(rrulestr(rule, dtstart=datetime(2026, 11, 27))[:5])  # a Friday
    assert got == [datetime(2026, 11, 27, 5, 30), datetime(2026, 11, 27, 17, 0),
                   datetime(2026, 11, 28, 5, 30), datetime(2026, 11, 28, 17, 0),
                   datetime(2026, 11, 30, 5, 30)]  # Sunday 29/11 skipped
    one = rt.build(mode="days", days=[], times=[time(6, 15, 30)])
    assert rt.describe(one) == "Hằng ngày lúc 06:15:30"
    assert list(rrulestr(one, dtstart=datetime(2026, 1, 1))[:1]) == [datetime(2026, 1, 1, 6, 15, 30)]


def test_ends_exceptions_and_other_shapes() -> None:
    start = datetime(2026, 1, 1, 7, 15)
    assert rt.describe("FREQ=DAILY;COUNT=3", dtstart=start) == "Hằng ngày lúc 07:15, 3 lần"
    assert rt.describe("FREQ=DAILY", dtstart=start, until=datetime(2026, 12, 31),
                       exdates=[datetime(2026, 2, 17, 7, 15)]) == (
        "Hằng ngày lúc 07:15, đến hết ngày 31/12/2026, không phát các ngày 17/02/2026")
    assert rt.describe("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=SA;BYHOUR=19;BYMINUTE=0") == (
        "2 tuần một lần, vào Thứ Bảy lúc 19:00")
    assert rt.describe("FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=8;BYMINUTE=0", lang="en") == (
        "Every month, on day 1 at 08:00")
    assert rt.describe("FREQ=HOURLY;BYMINUTE=30", lang="vi") == "Mỗi giờ, vào phút 30, cho đến khi hủy"
    assert rt.describe("FREQ=DAILY;BYDAY=SA,SU;BYHOUR=18;BYMINUTE=0") == "Thứ Bảy và Chủ nhật lúc 18:00"


@pytest.mark.parametrize("bad", ["25:00", "abc", "5:61", "1:2:3:4"])
def test_bad_times_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        rt.parse_times(bad)
    assert rt.parse_times("5h30, 17h") == [time(5, 30), time(17, 0)]
