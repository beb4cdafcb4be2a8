"""No page in Vietnamese shows a raw value to a person (issue 20): every status, priority and
audit action is a sentence in the page's language, never an enum value, a Python repr
(`automatic=True`) or a bare hash. The deny-list is built from the code's own vocabularies
(controller/db/statuses.py, the audit actions the code records), so a new status or action
is covered the day it is added; every panel page is rendered with data in it."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.db import statuses
from controller.db.models import Broadcast, User
from controller.db.models_health import Alarm
from controller.services import audit
from tests.support import agenda_data
from tests.support.browser import Panel, PanelClient, running_panel

CONTROLLER = Path(__file__).resolve().parents[2] / "controller"
RECORDED = re.compile(r'audit\.record\(\s*\w+,\s*[^,]+,\s*"([a-z_.]+)"')
TAGS = re.compile(r"<(script|style|title)\b.*?</\1>|<[^>]+>", re.S)
# values a person types in a file: the CSV import's help names its column values
ALLOWED = {"/stations-import": {"speaker", "led"}}
REPR = re.compile(r"\b\w+=(True|False|None|\d|'|\")|\b(True|False|None)\b|[0-9a-f]{32,}")


def deny_list() -> set[str]:
    words: set[str] = set()
    for name in dir(statuses):
        enum = getattr(statuses, name)
        if isinstance(enum, type) and issubclass(enum, str) and enum is not str:
            words |= {str(m.value) for m in enum}  # type: ignore[attr-defined]
    words |= {"normal", "priority", "emergency"}  # priorities
    words -= {"xa"}  # CommuneKind.XA is also the Vietnamese word "xa" (far: "tránh xa")
    for path in CONTROLLER.rglob("*.py"):
        words |= set(RECORDED.findall(path.read_text(encoding="utf-8")))
    return words


def visible_text(page: str) -> str:
    """What a person reads: the <main> part without tags, scripts or attribute values."""
    main = page.split("<main>", 1)[-1]
    return html.unescape(TAGS.sub(" ", main))


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _plant_words(panel: Panel, ids: dict[str, object]) -> None:
    """Rows whose raw form would leak: alarms, audit entries of every shape."""
    devices = ids["devices"]  # type: ignore[index]
    hop_hoa = devices[ids["hop_hoa"]][0]  # type: ignore[index]
    with panel.rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        s.add(Alarm(device_id=hop_hoa, kind="offline", state="open", active_key=f"{hop_hoa}:offline"))
        audit.record(
            s,
            admin.id,
            "broadcast.create",
            "broadcast",
            1,
            title="Bản tin sáng",
            priority="priority",
            start_at="2026-12-06T01:30:00+00:00",
            automatic=True,
            stations=[1, 2],
            media="ab" * 32,
            status="scheduled",
        )
        audit.record(s, admin.id, "schedule.approve", "schedule", 1, status="active", rrule="FREQ=DAILY")
        audit.record(s, admin.id, "alarm.resolve", "alarm", 1, automatic=True, kind="offline")
        audit.record(s, admin.id, "led.cancel", "led_message", 1, source="operator")


def _later_bulletin(panel: Panel) -> int:
    """The one-off bulletin agenda_data.plant puts in the coming hour (its "Đổi giờ" form)."""
    with panel.rt.db.session() as s:
        return int(s.scalars(select(Broadcast.id).where(Broadcast.title == agenda_data.LATER_TITLE)).one())


def _pages(panel: Panel, c: PanelClient, ids: dict[str, object]) -> list[str]:
    device = ids["devices"][ids["hop_hoa"]][0]  # type: ignore[index]
    planted = agenda_data.plant(panel.rt, ids)  # type: ignore[arg-type]
    return [
        "/",
        "/stations",
        f"/stations/{device}",
        "/bulletins",
        "/approvals",
        "/playlog",
        "/schedules",
        "/schedules?view=month",
        f"/schedules?view=month&day={planted['today'] - timedelta(days=1)}",
        f"/schedules/broadcasts/{_later_bulletin(panel)}/move",
        "/schedules/new",
        f"/schedules/{planted['schedule']}/edit",
        "/led",
        "/alarms",
        "/ops",
        f"/ops/stations/{device}",
        "/reports",
        "/audit",
        "/admin/users",
        "/account/password",
        "/emergency",
        "/live",
        "/map",
        "/library",
        "/emergency-presets",
        "/account/alerts",
        "/stations-import",
    ]


def test_no_page_shows_a_raw_status_action_repr_or_hash(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    admin = panel.client()
    admin.login("admin", panel.settings.admin_password)
    _plant_words(panel, ids)
    denied = deny_list()
    assert {"played", "missed", "draft", "active", "user.login", "broadcast.create"} <= denied
    found: dict[str, list[str]] = {}
    for path in _pages(panel, admin, ids):
        r = admin.http.get(path)
        assert r.status_code == 200, path
        text = visible_text(r.text)
        hits = sorted(
            {
                w
                for w in denied - ALLOWED.get(path, set())
                if re.search(rf"(?<![\w.-]){re.escape(w)}(?![\w-]|\.\w)", text)
            }
        )
        hits += [m.group(0) for m in REPR.finditer(text)]
        if hits:
            found[path] = hits
    assert found == {}, "\n".join(f"{p}: {h}" for p, h in found.items())


def test_the_words_have_english() -> None:
    from controller.web import words
    from controller.web.i18n import catalog_ids
    from controller.web.routes_reports import AUDIT_ACTIONS

    wanted = {
        *words.PLAY_REASONS.values(),
        words.OTHER_REASON,
        *words.AUDIT_OBJECTS.values(),
        words.OTHER_OBJECT,
        *words.AUDIT_LABELS.values(),
        *words.VALUES.values(),
        words.YES,
        words.NO,
        *AUDIT_ACTIONS.values(),
        "Thao tác khác",
    }
    assert sorted(wanted - catalog_ids("en")) == []
    recorded = {w for w in deny_list() if "." in w}
    assert sorted(recorded - set(AUDIT_ACTIONS)) == []  # every action the code records has a name
