"""Recurring LED text uses the audio schedules' rules: each occurrence becomes a window in the
boards' desired state, boards show it only inside its windows, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core.errors import UserError
from controller.db.session import Database
from controller.services import led
from device_agents.led.content import choose
from tests.unit.test_led_service import _setup

# 01:00 UTC = 08:00 in Hà Nội, Saturday 05/12/2026.
NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


def _req(**fields: object) -> led.LedMessageCreate:
    return led.LedMessageCreate.model_validate({"targets": {"all": True}, **fields})


def test_recurring_text_shows_in_each_window_only(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    try:
        _commune, board, far, _horn = _setup(db)
        with db.session() as s:
            base = _req(text="Chào mừng đến xã Hợp Hòa")
            led.create(s, base, None, now=NOW)
            # Weekdays 07:00 and 17:00 local time, 30 minutes each, except Monday 07/12 17:00.
            rec = _req(text="Giờ tiêm chủng: 07:00–07:30 và 17:00–17:30", priority="priority",
                       rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=7,17;BYMINUTE=0",
                       dtstart="2026-12-01T07:00:00", exdates=["2026-12-07T17:00:00"], show_minutes=30)
            row, targets, info = led.create(s, rec, None, now=NOW)
            s.commit()
            assert row is not None and sorted(targets) == sorted([board, far])
            # The operator sees when it will be up: Monday 07/12 07:00 local = 00:00 UTC first.
            assert info["next_windows"][0] == {"start_at": "2026-12-07T00:00:00+00:00",
                                               "end_at": "2026-12-07T00:30:00+00:00"}
            assert info["next_windows"][1]["start_at"] == "2026-12-08T00:00:00+00:00"  # 17:00 excluded
        with db.session() as s:
            content = led.content_for(s, [board], NOW)[board]
        windows = [m for m in content.messages if m.item_id.startswith(f"l{row.id}@")]
        # 8 days ahead from Saturday: Mon–Fri twice a day, minus one exdate, plus next Monday's.
        assert [m.start_at.isoformat() for m in windows][:3] == [
            "2026-12-07T00:00:00+00:00", "2026-12-08T00:00:00+00:00", "2026-12-08T10:00:00+00:00"]
        assert len({m.item_id for m in windows}) == len(windows)  # stable, distinct item ids

        def shown(at: datetime) -> str:
            pick = choose(content, at)
            assert pick is not None
            return pick.text

        monday_0710 = datetime(2026, 12, 7, 0, 10, tzinfo=UTC)
        assert shown(NOW) == "Chào mừng đến xã Hợp Hòa"  # Saturday: no window
        assert shown(monday_0710).startswith("Giờ tiêm chủng")
        assert shown(monday_0710 + timedelta(minutes=25)) == "Chào mừng đến xã Hợp Hòa"  # 07:35
        assert shown(datetime(2026, 12, 7, 10, 5, tzinfo=UTC)) == "Chào mừng đến xã Hợp Hòa"  # exdate
        # Rebuilding later gives the same ids for the same windows (boards never flicker).
        with db.session() as s:
            later = led.content_for(s, [board], NOW + timedelta(hours=30))[board]
        assert {m.item_id for m in later.messages} >= {m.item_id for m in windows[:3]}
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"rrule": "FREQ=DAILY;BYHOUR=7"}, "led.recurrence_incomplete"),
        ({"show_minutes": 10}, "led.recurrence_incomplete"),
        ({"rrule": "FREQ=DAILY", "dtstart": "2026-12-01T07:00:00", "show_minutes": 5,
          "end_at": "2026-12-30T00:00:00+07:00"}, "led.recurrence_with_window"),
        ({"rrule": "FREQ=DAILY;BYHOUR=25", "dtstart": "2026-12-01T07:00:00", "show_minutes": 5},
         "schedule.bad_rule"),
    ],
)
def test_broken_recurrence_is_refused_clearly(database_url: str, fields: dict, key: str) -> None:
    db = Database(database_url)
    db.migrate()
    try:
        _setup(db)
        with db.session() as s, pytest.raises(UserError) as err:
            led.create(s, _req(text="x", **fields), None, now=NOW)
        assert err.value.key == key
    finally:
        db.dispose()
