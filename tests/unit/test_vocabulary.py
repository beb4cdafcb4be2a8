"""One vocabulary (issue 17): statuses are the StrEnums of controller/db/statuses.py, stored as
the same strings as before; the time zone comes from Settings; every message key has its
Vietnamese and English in the one gettext catalogue of controller/i18n/, and times are
formatted dd/mm/yyyy, 24-hour, in the zone the caller gives."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import pytest
from sqlalchemy import String, select, text
from sqlalchemy.orm import Session

import controller
from controller.core.config import DEFAULT_TIMEZONE, Settings
from controller.core.i18n import has_message, t
from controller.db.models import Area, Broadcast, Delivery, Device, PlayLog
from controller.db.models_health import Alarm
from controller.db.models_schedules import Schedule
from controller.db.registry import metadata
from controller.db.session import Database
from controller.db.statuses import COLUMNS, BroadcastStatus, DeliveryState, PlayStatus
from controller.i18n import catalogue, formats
from controller.services import enrollment, reports

CONTROLLER = Path(controller.__file__).resolve().parent


def _column(table: str, name: str):  # type: ignore[no-untyped-def]
    return metadata.tables[table].c[name]


@pytest.mark.parametrize(("table", "name", "enum"), COLUMNS, ids=[f"{t}.{c}" for t, c, _ in COLUMNS])
def test_every_status_column_holds_its_enum(table: str, name: str, enum: type[StrEnum]) -> None:
    """A VARCHAR wide enough for every member (so no migration), a default that is a member."""
    column = _column(table, name)
    assert isinstance(column.type, String)
    assert max(len(m.value) for m in enum) <= (column.type.length or 0), f"{table}.{name} too narrow"
    if column.default is not None:
        assert column.default.arg in set(enum), f"{table}.{name} defaults to a non-member"
    for member in enum:
        assert member == member.value and f"{member}" == member.value and member.value.islower()


def stored_values_outside(session: Session) -> dict[str, set[str]]:
    """Every value a status column holds that its enum does not know (empty: all members)."""
    out: dict[str, set[str]] = {}
    for table, name, enum in COLUMNS:
        column = _column(table, name)
        found = {v for v in session.scalars(select(column).distinct()) if v is not None}
        unknown = found - {m.value for m in enum}
        if unknown:
            out[f"{table}.{name}"] = unknown
    return out


def test_enum_members_are_stored_as_the_same_strings(database_url: str) -> None:
    """Written through the ORM as members (and as defaults), read back raw: the old strings,
    on SQLite and PostgreSQL alike."""
    db = Database(database_url)
    db.migrate()
    try:
        with db.session() as s:
            commune = Area(level="commune", name="Xã Thuỵ Lôi")
            s.add(commune)
            s.flush()
            dev = Device(uid="spk-vocab", name="Loa 1", kind="speaker", commune_id=commune.id)
            s.add(dev)
            s.flush()
            bc = Broadcast(title="Bản tin", media=[], priority="normal", start_at=datetime.now(UTC),
                           duration_s=60.0, targets={"all": True})  # status: the model's default
            draft = Broadcast(title="Nháp", status=BroadcastStatus.DRAFT, media=[], priority="normal",
                              start_at=datetime.now(UTC), duration_s=60.0, targets={"all": True})
            s.add_all([bc, draft])
            s.flush()
            s.add(Delivery(broadcast_id=bc.id, device_id=dev.id, item_id=f"b{bc.id}"))
            s.add(PlayLog(device_id=dev.id, item_id=f"b{bc.id}", broadcast_id=bc.id,
                          status=PlayStatus.PLAYED))
            s.add(Alarm(device_id=dev.id, kind="offline", opened_at=datetime.now(UTC)))
            s.add(Schedule(title="Sáng", media=[], rrule="FREQ=DAILY", dtstart="2026-12-01T05:30:00",
                           targets={"all": True}, duration_s=60.0))
            s.commit()
            raw = dict(s.execute(text("SELECT title, status FROM broadcasts")).all())
            assert raw == {"Bản tin": "scheduled", "Nháp": "draft"}
            assert s.execute(text("SELECT state FROM deliveries")).scalar_one() == "pending"
            assert s.execute(text("SELECT status FROM play_log")).scalar_one() == "played"
            assert s.execute(text("SELECT state FROM alarms")).scalar_one() == "open"
            schedule = s.execute(text("SELECT status, timezone FROM schedules")).one()
            assert tuple(schedule) == ("draft", DEFAULT_TIMEZONE)
            got = s.scalars(select(Broadcast).where(Broadcast.status == BroadcastStatus.DRAFT)).one()
            assert got.title == "Nháp" and got.status == "draft"
            assert s.scalars(select(Delivery.state)).one() == DeliveryState.PENDING
            assert stored_values_outside(s) == {}
    finally:
        db.dispose()


# -- the time zone --------------------------------------------------------------------------
def test_no_time_zone_literal_outside_the_settings() -> None:
    literal = re.compile(r"Asia/Ho_Chi_Minh")
    found = [str(p.relative_to(CONTROLLER)) for p in CONTROLLER.rglob("*.py")
             if literal.search(p.read_text(encoding="utf-8"))]
    assert found == ["core/config.py"], found
    assert Settings().timezone == DEFAULT_TIMEZONE
    assert Settings(timezone="UTC").timezone == "UTC"
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings(timezone="Asia/Hanoi_City")


def test_reports_follow_the_zone_they_are_given() -> None:
    """31/01 17:30 UTC is February in Hanoi and still January in UTC: the zone is the caller's."""
    instant = datetime(2026, 1, 31, 17, 30, tzinfo=UTC)
    hanoi = reports.Filters()  # the Settings.timezone default
    utc = reports.Filters(tz=reports.ZoneInfo("UTC"))
    assert formats.month(instant, hanoi.tz) == "02/2026"
    assert formats.month(instant, utc.tz) == "01/2026"
    assert enrollment.people_time(instant, "UTC") == "17:30 31/01/2026"
    assert enrollment.people_time(instant, DEFAULT_TIMEZONE) == "00:30 01/02/2026"


# -- dates and times as people read them ------------------------------------------------------
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_dates_are_day_month_year_and_24_hour_in_every_language(lang: str) -> None:
    afternoon = datetime(2026, 3, 4, 8, 5, 9, tzinfo=UTC)  # 15:05:09 in Hanoi
    assert formats.date_time(afternoon, DEFAULT_TIMEZONE, lang=lang) == "04/03/2026 15:05"
    assert formats.date_time(afternoon, DEFAULT_TIMEZONE, seconds=True, lang=lang) == "04/03/2026 15:05:09"
    assert formats.time_date(afternoon, DEFAULT_TIMEZONE, lang) == "15:05 04/03/2026"
    assert formats.month(afternoon + timedelta(days=30), DEFAULT_TIMEZONE, lang) == "04/2026"
    assert formats.date_time(None, DEFAULT_TIMEZONE) == "—"
    assert formats.day(afternoon.date(), lang) == "04/03/2026"


# -- one catalogue ------------------------------------------------------------------------------
def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_message_key_has_vietnamese_and_english_with_the_same_placeholders() -> None:
    keys = catalogue.message_keys()
    assert len(keys) > 100
    english = catalogue.translated_ids("en")
    missing, mismatched = [], []
    for key in sorted(keys):
        vi = catalogue.source_text(key)
        en = catalogue.translate(vi, "en", key)
        if vi not in english and en == vi:  # neither a plain entry nor one with the key as msgctxt
            missing.append(key)
            continue
        if _fields(vi) != _fields(en):
            mismatched.append(key)
    assert not missing, f"no English for: {missing}"
    assert not mismatched, f"placeholders differ: {mismatched}"


def test_keys_and_panel_sentences_share_one_english_entry() -> None:
    """auth.bad_credentials is also a sentence of the login page: translated once."""
    vi = t("auth.bad_credentials", "vi")
    assert vi == "Sai tên đăng nhập hoặc mật khẩu."
    assert t("auth.bad_credentials", "en") == catalogue.translate(vi, "en") == "Wrong username or password."
    assert t("media.too_large", "en", limit="50 MB") == "The file is too large: at most 50 MB."
    assert t("media.too_large", "fr", limit="50 MB") == "Tệp quá lớn: tối đa 50 MB."  # unknown: Vietnamese
    assert has_message("auth.required") and not has_message("auth.no_such_key")
    with pytest.raises(KeyError):
        t("auth.no_such_key")


def test_a_key_may_have_its_own_english_for_a_shared_vietnamese_word() -> None:
    """The export's "Trạng thái" column is "Status"; the panel's "Trạng thái" stays "State"."""
    assert t("report.column.status", "vi") == "Trạng thái"
    assert t("report.column.status", "en") == "Status"
    assert catalogue.translate("Trạng thái", "en") == "State"
    assert reports.header("en")[:3] == ["Started", "Finished", "Commune"]
    assert t("report.play.failed", "vi") == "Lỗi" and t("report.play.failed", "en") == "failed"


def test_messages_live_only_in_the_catalogue() -> None:
    assert not list((CONTROLLER / "core").glob("messages_*.py"))
    assert not (CONTROLLER / "web" / "i18n").exists()
    for lang in catalogue.LANGS:
        assert (catalogue.CATALOGUE_DIR / lang / "LC_MESSAGES" / "messages.po").is_file()
