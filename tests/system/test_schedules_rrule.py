"""Issue 3 acceptance: schedule occurrences equal python-dateutil's expansion of the same
RFC 5545 rule in Asia/Ho_Chi_Minh, through the service and through the HTTP preview."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from controller.core.errors import UserError
from controller.services.recurrence import Recurrence, item_id, parse_item_id
from testkit.api import Api
from testkit.harness import System
from tests.support.audio import tone

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DTSTART = datetime(2026, 12, 1, 5, 30)  # a Tuesday, local wall time
WINDOW = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))

# (rule, exdates (local), until (local)) — a broad set of what operators and RFC 5545 use.
RULES: list[tuple[str, list[datetime], datetime | None]] = [
    ("FREQ=DAILY", [], None),
    ("FREQ=DAILY;COUNT=10", [datetime(2026, 12, 3, 5, 30), datetime(2026, 12, 7, 5, 30)], None),
    ("FREQ=DAILY;BYHOUR=5,17;BYMINUTE=30;BYSECOND=0", [], datetime(2026, 12, 31, 23, 59)),
    ("FREQ=HOURLY;INTERVAL=2;BYMINUTE=0;BYSECOND=0", [], datetime(2026, 12, 4, 0, 0)),
    ("FREQ=WEEKLY;BYDAY=MO,WE,FR", [datetime(2026, 12, 4, 5, 30)], None),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;COUNT=12", [], None),
    ("FREQ=MONTHLY;BYDAY=1MO", [], None),
    ("FREQ=MONTHLY;BYDAY=-1FR", [], None),
    ("FREQ=MONTHLY;BYDAY=2TU,4TU;UNTIL=20270630T000000", [], None),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", [], None),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,3", [], datetime(2027, 6, 1)),
    ("FREQ=MONTHLY;BYMONTHDAY=1,15", [datetime(2027, 1, 1, 5, 30)], None),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", [], None),
    ("FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=10;COUNT=5", [], None),
    ("FREQ=YEARLY;BYMONTH=1,5;BYDAY=2SU", [], None),
    ("FREQ=YEARLY;BYYEARDAY=1,100,-1", [], None),
    ("FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO", [], None),
    ("RRULE:FREQ=WEEKLY;BYDAY=SA;UNTIL=20270301T000000", [], None),
]


def dateutil_expansion(rule: str, exdates: list[datetime], until: datetime | None) -> list[datetime]:
    """The reference: dateutil in local wall time, then placed in Asia/Ho_Chi_Minh."""
    text = rule[6:] if rule.startswith("RRULE:") else rule
    out = []
    for local in rrulestr(text, dtstart=DTSTART):
        if local > datetime(2028, 1, 2):
            break
        if local in exdates or (until is not None and local > until):
            continue
        instant = local.replace(tzinfo=TZ)
        if WINDOW[0] <= instant <= WINDOW[1]:
            out.append(instant)
    return out


@pytest.mark.parametrize(("rule", "exdates", "until"), RULES, ids=[r[0] for r in RULES])
def test_expansion_equals_dateutil(rule: str, exdates: list[datetime], until: datetime | None) -> None:
    rec = Recurrence.of(rule, DTSTART, until, exdates, "Asia/Ho_Chi_Minh")
    got = rec.between(*WINDOW)
    assert got == dateutil_expansion(rule, exdates, until)
    assert got, "every rule in the set has occurrences in the window"


def test_utc_until_is_an_instant_and_bad_rules_are_refused() -> None:
    # UNTIL in UTC (RFC 5545 with a zone): 2026-12-04T22:30Z is 05:30 local on the 5th.
    rec = Recurrence.of("FREQ=DAILY;UNTIL=20261204T223000Z", DTSTART, None, [], "Asia/Ho_Chi_Minh")
    days = [t.astimezone(TZ).day for t in rec.between(*WINDOW)]
    assert days == [1, 2, 3, 4, 5]
    for bad, code in [("FREQ=MINUTELY", "schedule.too_frequent"),
                      ("FREQ=DAILY;BYDAY=XX", "schedule.bad_rule"),
                      ("BYDAY=MO", "schedule.bad_rule"), ("FREQ=DAILY\nDTSTART:20260101T000000",
                                                          "schedule.bad_rule")]:
        with pytest.raises(UserError) as err:
            Recurrence.of(bad, DTSTART, None, [], "Asia/Ho_Chi_Minh")
        assert err.value.key == code


def test_item_ids_are_stable_and_parse_back() -> None:
    t = datetime(2026, 12, 1, 5, 30, tzinfo=TZ)
    assert item_id(7, t) == "s7@20261130T223000Z"
    assert parse_item_id("s7@20261130T223000Z") == (7, t.astimezone(UTC))
    assert parse_item_id("b7") is None


async def test_occurrences_preview_over_http(system: System, tmp_path: Path) -> None:
    await system.add_stations(1)
    media = await Api.of(system).upload(tone(tmp_path / "b.wav", seconds=1.0))
    for rule, exdates, until in RULES[:12]:
        body = {"title": "Bản tin sáng", "media": [media["sha256"]], "rrule": rule,
                "dtstart": DTSTART.isoformat(), "exdates": [e.isoformat() for e in exdates],
                "targets": {"all": True}, "priority": "normal"}
        if until is not None:
            body["until"] = until.isoformat()
        r = await system.api("POST", "/api/v1/schedules", json=body)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        got = await system.api_json("GET", f"/api/v1/schedules/{sid}/occurrences",
                                    params={"from": WINDOW[0].isoformat(), "to": WINDOW[1].isoformat()})
        assert [datetime.fromisoformat(g) for g in got] == dateutil_expansion(rule, exdates, until), rule
        assert all(g.endswith("+07:00") for g in got)
    r = await system.api("POST", "/api/v1/schedules", headers={"Accept-Language": "en"}, json={
        "title": "x", "media": [media["sha256"]], "rrule": "FREQ=SECONDLY", "dtstart": "2026-12-01T05:30:00",
        "targets": {"all": True}})
    assert r.status_code == 422 and r.json()["code"] == "schedule.too_frequent"
    assert "hourly" in r.json()["detail"]
    r = await system.api("GET", f"/api/v1/schedules/{sid}/occurrences",
                         params={"from": "2027-01-01T00:00:00+07:00", "to": "2026-01-01T00:00:00+07:00"})
    assert r.status_code == 422
