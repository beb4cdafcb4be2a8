"""The panel's feature pages (issue 7, second slice) over HTTP, in process: per-role
visibility and refusal, CSRF on every new form, area scope, the schedule check before
saving (plain-Vietnamese recurrence, conflicts, policy problems), emergency confirmation,
LED dry run and previews, technician station creation with code and QR, alarms, reports,
the audit log, and English for every new string. The browser flows are in
tests/system/test_panel_browser_flows.py."""

from __future__ import annotations

import ast
import csv
import io
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from controller.db.models import Device, Media, PlayLog, User
from controller.db.models_health import Alarm, TelemetrySample
from controller.db.models_schedules import Schedule
from controller.services import devices, policy
from controller.web import panel as panel_module
from controller.web.i18n import catalog_ids
from tests.support.browser import PW, Panel, PanelClient, running_panel

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WEB = Path(panel_module.__file__).parent
FEATURES = ("bulletins_tts", "schedules", "ops", "led", "reports", "emergency")
TEMPLATES = (
    "bulletin_tts",
    "schedules",
    "schedule_edit",
    "_week",
    "ops",
    "ops_station",
    "alarms",
    "reports",
    "audit",
    "led",
    "emergency",
    "emergency_confirm",
    "emergency_progress",
)
# page -> roles that get it (others: 403)
PAGES = {
    "/schedules": {"admin", "canbo.hophoa", "canbo.huyen", "duyet", "kythuat", "nguoixem"},
    "/schedules/new": {"admin", "canbo.hophoa", "canbo.huyen"},
    "/bulletins/tts": {"admin", "canbo.hophoa", "canbo.huyen"},
    "/emergency": {"admin", "canbo.hophoa", "canbo.huyen"},
    "/led": {"admin", "canbo.hophoa", "canbo.huyen", "duyet", "kythuat", "nguoixem"},
    "/ops": {"admin", "kythuat"},
    "/alarms": {"admin", "canbo.hophoa", "canbo.huyen", "duyet", "kythuat", "nguoixem"},
    "/reports": {"admin", "canbo.hophoa", "canbo.huyen", "duyet", "kythuat", "nguoixem"},
    "/audit": {"admin", "duyet"},
}
NAV = {'href="/ops"': "/ops", 'href="/audit"': "/audit", 'href="/emergency"': "/emergency"}


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Panel]:
    """SQLite only: page logic whose SQL the storage-level tests already cover on both."""
    with running_panel(tmp_path, f"sqlite:///{tmp_path / 'panel.db'}") as p:
        yield p


def _login(panel: Panel, username: str) -> PanelClient:
    c = panel.client()
    c.login(username, panel.settings.admin_password if username == "admin" else PW)
    return c


def _media(panel: Panel, seconds: float = 60.0) -> str:
    sha = secrets.token_hex(32)
    with panel.rt.db.session() as s:
        s.add(
            Media(
                sha256=sha,
                original_name="Bản tin sáng.mp3",
                content_type="audio/ogg",
                size=1000,
                duration_s=seconds,
                codec="opus",
                source_sha256=sha,
            )
        )
    return sha


def _schedule_form(sha: str, **extra: object) -> dict[str, object]:
    tomorrow = (datetime.now(TZ) + timedelta(days=1)).date()
    return {
        "title": "Bản tin sáng",
        "media": sha,
        "target": "all",
        "mode": "days",
        "priority": "normal",
        "days": ["0", "1", "2", "3", "4", "5"],
        "times": "05:30, 17:00",
        "start_date": tomorrow.isoformat(),
        "action": "check",
        **extra,
    }


def test_each_role_sees_and_gets_only_its_pages(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    for username in ("admin", "canbo.hophoa", "canbo.huyen", "duyet", "kythuat", "nguoixem"):
        c = _login(panel, username)
        for path, allowed in PAGES.items():
            r = c.http.get(path)
            assert r.status_code == (200 if username in allowed else 403), (username, path, r.status_code)
        home = c.http.get("/").text
        assert 'href="/schedules"' in home and 'href="/reports"' in home and 'href="/alarms"' in home
        for marker, page in NAV.items():
            assert (marker in home) is (username in PAGES[page]), (username, marker)
        schedules = c.http.get("/schedules").text
        assert ('id="new-schedule"' in schedules) is (username in PAGES["/schedules/new"])
        led = c.http.get("/led").text
        assert ('id="led-form"' in led) is (username in PAGES["/emergency"])


def test_every_new_form_needs_its_csrf_token(lite: Panel) -> None:
    lite.seed(stations_per_commune=1)
    c = _login(lite, "admin")
    for path in (
        "/bulletins/tts",
        "/schedules/save",
        "/schedules/1/approve",
        "/schedules/1/delete",
        "/led/send",
        "/led/1/cancel",
        "/ops/stations",
        "/ops/stations/1/code",
        "/ops/stations/1/diagnostics",
        "/alarms/1/ack",
        "/emergency/confirm",
        "/emergency/start",
        "/emergency/1/cancel",
    ):
        r = c.http.post(path, data={"csrf": "wrong", "title": "x"}, follow_redirects=False)
        assert r.status_code == 403 and "Biểu mẫu đã hết hạn" in r.text, path
    anonymous = lite.client()
    r = anonymous.http.get("/schedules", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_schedule_check_shows_plain_words_conflicts_and_policy_then_saves_for_approval(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    sha = _media(panel)
    op = _login(panel, "canbo.hophoa")
    form = _schedule_form(sha)
    r = op.post_form("/schedules/save", form, csrf_from="/schedules/new")
    assert r.status_code == 200, r.text[-2000:]
    assert 'id="schedule-description">Hằng ngày lúc 05:30 và 17:00, trừ Chủ nhật<' in r.text
    assert (
        'id="no-conflicts"' in r.text and 'id="policy-ok"' in r.text and "Cần người có quyền duyệt" in r.text
    )
    assert r.text.count("slot slot-mine") >= 12  # the week view from the first occurrence: 2 a day, 6 days
    with panel.rt.db.session() as s:
        assert s.scalar(select(Schedule.id)) is None  # a check stores nothing

    r = op.post_form("/schedules/save", {**form, "action": "save"}, csrf_from="/schedules/new")
    assert r.status_code == 303 and "ok=schedule_draft" in r.headers["location"]
    listing = op.http.get("/schedules").text
    assert "Bản tin sáng" in listing and "Chờ duyệt" in listing and "approve-schedule" not in listing

    # A second schedule at the same time: the check names the conflict before saving.
    again = op.post_form("/schedules/save", {**form, "title": "Thông báo chiều"}, csrf_from="/schedules/new")
    assert (
        'id="schedule-conflicts"' in again.text and "“Bản tin sáng” sẽ chờ lịch này phát xong." in again.text
    )

    # The commune's policy (05:00-17:00) refuses 17:00 + 60 s before anything is saved; in English too.
    admin = panel.rt
    with admin.db.session() as s:
        root = s.scalars(select(User).where(User.username == "admin")).one()
        policy.put(s, ids["hop_hoa"], policy.PolicyIn(allowed_hours=[("05:00", "17:00")]), root)
        s.commit()
    refused = op.post_form(
        "/schedules/save", {**form, "action": "save", "title": "Thông báo chiều"}, csrf_from="/schedules/new"
    )
    assert refused.status_code == 422 and 'id="schedule-error"' in refused.text, refused.text[-1500:]
    with panel.rt.db.session() as s:
        assert s.scalar(select(Schedule.id).where(Schedule.title == "Thông báo chiều")) is None

    # Another commune: refused (403) with the Vietnamese scope message or the 403 page.
    other = op.post_form(
        "/schedules/save",
        {**form, "target": "communes", "communes": [str(ids["xuan_hoa"])]},
        csrf_from="/schedules/new",
    )
    assert other.status_code == 403

    # The approver approves; the schedule is active and the editor reads it back.
    approver = _login(panel, "duyet")
    page = approver.http.get("/schedules").text
    sid = re.search(r"/schedules/(\d+)/approve", page)
    assert sid, page[-2000:]
    r = approver.post_form(f"/schedules/{sid.group(1)}/approve", csrf_from="/schedules")
    assert r.status_code == 303 and "schedule_approved" in r.headers["location"]
    with panel.rt.db.session() as s:
        assert s.get(Schedule, int(sid.group(1))).status == "active"  # type: ignore[union-attr]
    edit = op.http.get(f"/schedules/{sid.group(1)}/edit").text
    assert 'value="05:30, 17:00"' in edit and 'name="rrule_raw" value=""' in edit
    # The commune operator of another commune does not see it.
    with panel.rt.db.session() as s:
        root = s.scalars(select(User).where(User.username == "admin")).one()
        from controller.web import accounts

        accounts.create_user(s, root, "canbo.xuanhoa", PW, "commune", ids["xuan_hoa"])
    assert "Bản tin sáng" not in _login(panel, "canbo.xuanhoa").http.get("/schedules").text


def test_hourly_recurrence_exdates_and_english(lite: Panel) -> None:
    lite.seed(stations_per_commune=1)
    sha = _media(lite, 30)
    op = _login(lite, "canbo.hophoa")
    skip = (datetime.now(TZ) + timedelta(days=3)).strftime("%d/%m/%Y")
    form = _schedule_form(
        sha, mode="hours", every_hours="2", minute="0", days=[str(d) for d in range(7)], exdates=skip
    )
    r = op.post_form("/schedules/save", form, csrf_from="/schedules/new")
    assert f"2 giờ một lần, vào đầu giờ, cho đến khi hủy, không phát các ngày {skip}" in r.text, r.text[
        -1500:
    ]
    bad = op.post_form(
        "/schedules/save", {**_schedule_form(sha), "times": "25:99"}, csrf_from="/schedules/new"
    )
    assert bad.status_code == 422 and "Giờ phát không hợp lệ" in bad.text
    op.http.cookies.set("cc_lang", "en")
    r = op.post_form("/schedules/save", _schedule_form(sha), csrf_from="/schedules/new")
    assert "Every day at 05:30 and 17:00, except Sunday" in r.text and "Check before saving" in r.text


def test_tts_page_makes_a_bulletin_with_a_preview(lite: Panel) -> None:
    lite.seed(stations_per_commune=1)
    op = _login(lite, "canbo.hophoa")
    r = op.post_form(
        "/bulletins/tts",
        {
            "text": "Thông báo: ngày 02/09/2026 họp dân lúc 7 giờ.",
            "voice": "vi-north",
            "rate": "1.0",
            "title": "Họp dân",
        },
        csrf_from="/bulletins/tts",
    )
    assert r.status_code == 200, r.text[-1500:]
    sha = re.search(r'id="tts-preview" src="/media/([0-9a-f]{64})"', r.text)
    assert sha and f'href="/schedules/new?media={sha.group(1)}"' in r.text
    assert "hai tháng chín" in r.text  # the normalizer's spoken text is shown
    assert op.http.get(f"/media/{sha.group(1)}").status_code == 200
    with lite.rt.db.session() as s:
        assert s.get(Media, sha.group(1)).original_name == "Họp dân"  # type: ignore[union-attr]
    empty = op.post_form("/bulletins/tts", {"text": " "}, csrf_from="/bulletins/tts")
    assert empty.status_code == 422 and "Hãy nhập nội dung bản tin." in empty.text


def test_emergency_confirmation_states_areas_text_and_repeat(lite: Panel) -> None:
    ids = lite.seed(stations_per_commune=2)
    op = _login(lite, "canbo.huyen")
    form = {
        "title": "Bão số 3",
        "text": "Bão số 3 sắp đổ bộ. Người dân ở trong nhà.",
        "target": "communes",
        "communes": [str(ids["hop_hoa"]), str(ids["kim_long"])],
        "repeat": "hours",
        "every_hours": "2",
    }
    r = op.post_form("/emergency/confirm", form, csrf_from="/emergency")
    assert r.status_code == 200, r.text[-1500:]
    areas = re.search(r'id="confirm-areas">([^<]+)<', r.text)
    assert (
        areas
        and "Xã Hợp Hòa" in areas.group(1)
        and "Xã Kim Long" in areas.group(1)
        and "4 trạm" in areas.group(1)
    )
    assert "Bão số 3 sắp đổ bộ" in r.text and 'id="confirm-repeat">2 giờ một lần, cho đến khi hủy<' in r.text
    assert 'name="confirmed" value="yes"' in r.text and 'body class="emergency"' in r.text
    outside = op.post_form(
        "/emergency/confirm", {**form, "communes": [str(ids["xuan_hoa"])]}, csrf_from="/emergency"
    )
    assert outside.status_code == 403
    no_text = op.post_form("/emergency/confirm", {**form, "text": ""}, csrf_from="/emergency")
    assert no_text.status_code == 422
    unconfirmed = op.post_form("/emergency/start", form, csrf_from="/emergency")
    assert unconfirmed.status_code == 422 and "Hãy xác nhận" in unconfirmed.text


def test_led_compose_dry_run_preview_and_scoped_boards(lite: Panel) -> None:
    ids = lite.seed(stations_per_commune=1)
    with lite.rt.db.session() as s:
        mine = devices.create(
            s, devices.DeviceCreate(name="Bảng UBND Hợp Hòa", kind="led", commune_id=ids["hop_hoa"]), None
        )
        mine.reported = {"led": {"protocol": "ascii", "text": "Chao mung"}}
        theirs = devices.create(
            s, devices.DeviceCreate(name="Bảng Xuân Hòa", kind="led", commune_id=ids["xuan_hoa"]), None
        )
        s.commit()
        mine_id, theirs_id = mine.id, theirs.id
    op = _login(lite, "canbo.hophoa")
    page = op.http.get("/led").text
    assert f"/led/boards/{mine_id}/preview.png" in page and f"/led/boards/{theirs_id}/" not in page
    assert op.http.get(f"/led/boards/{mine_id}/preview.png").headers["content-type"] == "image/png"
    assert op.http.get(f"/led/boards/{theirs_id}/preview.png").status_code == 404
    png = op.http.get("/led/preview.png", params={"text": "Họp dân lúc 19:00", "color": "red"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    form = {"text": "Họp dân lúc 19:00", "target": "all", "when": "now", "color": "amber", "mode": "hold"}
    check = op.post_form("/led/send", {**form, "action": "check"}, csrf_from="/led")
    assert check.status_code == 200 and 'id="led-check-result"' in check.text
    assert "Hop dan luc 19:00" in check.text  # what the text-only board will really show
    sent = op.post_form("/led/send", {**form, "action": "send"}, csrf_from="/led")
    assert sent.status_code == 303 and "led_sent" in sent.headers["location"]
    assert "“Họp dân lúc 19:00”" in op.http.get("/led").text
    repeat = op.post_form(
        "/led/send",
        {**form, "when": "repeat", "times": "06:00", "days": ["5", "6"], "action": "check"},
        csrf_from="/led",
    )
    assert "Thứ Bảy và Chủ nhật lúc 06:00" in repeat.text
    outside = op.post_form(
        "/led/send", {**form, "target": "communes", "communes": [str(ids["xuan_hoa"])]}, csrf_from="/led"
    )
    assert outside.status_code == 403


def test_technician_creates_a_station_with_code_and_qr_alarms_and_acks(lite: Panel) -> None:
    ids = lite.seed(stations_per_commune=1)
    tech = _login(lite, "kythuat")
    r = tech.post_form(
        "/ops/stations",
        {"name": "Cụm loa thôn Đông", "kind": "speaker", "commune_id": str(ids["hop_hoa"])},
        csrf_from="/ops",
    )
    assert r.status_code == 200, r.text[-1500:]
    code = re.search(r'id="enrollment-code">([A-Z0-9]{5}-[A-Z0-9]{5})<', r.text)
    assert code and '<svg width="' in r.text and 'class="segno"' in r.text
    assert f"--code {code.group(1)}" in r.text and "communecast agent enroll" in r.text
    assert 'id="diag-test_tone"' in r.text
    with lite.rt.db.session() as s:
        device = s.scalars(select(Device).where(Device.name == "Cụm loa thôn Đông")).one()
        device_id = device.id
        s.add(
            Alarm(device_id=device_id, kind="mains_loss", state="open", active_key=f"{device_id}:mains_loss")
        )
        other = ids["devices"][ids["xuan_hoa"]][0]
        s.add(Alarm(device_id=other, kind="offline", state="open", active_key=f"{other}:offline"))
        s.commit()
    assert tech.http.get(f"/ops/stations/{device_id}/state.json").json()["online"] is False
    # Telemetry as an inline SVG chart drawn on the server (BIGINT ids are given on SQLite).
    with lite.rt.db.session() as s:
        base = datetime.now(UTC) - timedelta(hours=2)
        for i in range(12):
            s.add(
                TelemetrySample(
                    id=i + 1,
                    device_id=device_id,
                    ts=base + timedelta(minutes=10 * i),
                    cpu_temp_c=40.0 + i,
                    mains_v=220.0 - i,
                )
            )
        s.commit()
    health = tech.http.get(f"/ops/stations/{device_id}").text
    assert (
        health.count('<svg class="chart"') == 2
        and "51 °C" in health
        and re.search(r'<path class="chart-line" d="M48\.0,', health)
    )
    # The commune operator: sees only their commune's alarm, may acknowledge it.
    op = _login(lite, "canbo.hophoa")
    alarms = op.http.get("/alarms").text
    assert "Mất điện lưới" in alarms and "Trạm mất kết nối" not in alarms and "ack-button" in alarms
    alarm_id = re.search(r"/alarms/(\d+)/ack", alarms)
    assert alarm_id
    r = op.post_form(f"/alarms/{alarm_id.group(1)}/ack", csrf_from="/alarms")
    assert r.status_code == 303 and "alarm_acked" in r.headers["location"]
    assert "Đã xác nhận" in op.http.get("/alarms?state=acknowledged").text
    # Nobody else may create stations; a viewer has no acknowledge button.
    assert op.post_form("/ops/stations", {"name": "X", "commune_id": str(ids["hop_hoa"])}).status_code == 403
    assert "ack-button" not in _login(lite, "nguoixem").http.get("/alarms").text
    assert op.http.get(f"/ops/stations/{ids['devices'][ids['xuan_hoa']][0]}").status_code == 404


def test_reports_are_scoped_and_the_audit_log_filters_and_pages(lite: Panel) -> None:
    ids = lite.seed(stations_per_commune=1)
    now = datetime.now(UTC)
    with lite.rt.db.session() as s:
        for commune, n in ((ids["hop_hoa"], 3), (ids["xuan_hoa"], 2)):
            dev = ids["devices"][commune][0]
            for i in range(n):
                s.add(
                    PlayLog(
                        device_id=dev,
                        item_id=f"b{i}",
                        status="played",
                        started_at=now - timedelta(minutes=10),
                        finished_at=now - timedelta(minutes=8),
                    )
                )
        s.commit()
    op = _login(lite, "canbo.hophoa")
    page = op.http.get("/reports").text
    assert "Xã Hợp Hòa" in page and "Xã Xuân Hòa" not in page and ">6,0<" in page  # 3 plays x 2 minutes
    rows = list(csv.reader(io.StringIO(op.http.get("/reports/play-log.csv").content.decode("utf-8-sig"))))
    assert rows[0][0] == "Thời gian bắt đầu" and len(rows) == 4 and {r[2] for r in rows[1:]} == {"Xã Hợp Hòa"}
    assert op.http.get(f"/reports/play-log.csv?commune={ids['xuan_hoa']}").status_code == 403
    xlsx = op.http.get("/reports/play-log.xlsx")
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")
    admin = _login(lite, "admin")
    assert "Xã Xuân Hòa" in admin.http.get("/reports").text
    # Audit: the approver sees logins with filters and pages (50 per page).
    for _ in range(3):
        _login(lite, "nguoixem")
    approver = _login(lite, "duyet")
    audit = approver.http.get("/audit", params={"action": "user.login", "user": "nguoixem"}).text
    assert audit.count("<td>nguoixem</td>") == 3 and "Đăng nhập" in audit and "3 bản ghi" in audit
    with lite.rt.db.session() as s:
        from controller.services import audit as audit_service

        for i in range(60):
            audit_service.record(s, None, "device.create", "device", i, name=f"Trạm {i}")
        s.commit()
    first = approver.http.get("/audit?action=device.create").text
    assert "Trang 1/2" in first and 'href="?action=device.create&amp;page=2"' in first
    assert "Trang 2/2" in approver.http.get("/audit?action=device.create&page=2").text


def test_every_new_string_has_english_and_pages_switch(lite: Panel) -> None:
    msgid = re.compile(r"""_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
    vi = re.compile(r"[À-ỹĐđ]")
    wanted: set[str] = set()
    for name in TEMPLATES:
        for m in msgid.finditer((WEB / "templates" / f"{name}.html").read_text()):
            wanted.add(m.group(1) if m.group(1) is not None else m.group(2))
    for name in FEATURES:  # every Vietnamese string constant (implicit concatenation joined by ast)
        tree = ast.parse((WEB / f"routes_{name}.py").read_text())
        wanted |= {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and vi.search(n.value)
            and "\n" not in n.value
        }
    missing = sorted(wanted - catalog_ids("en"))
    assert not missing, f"no English for: {missing}"
    lite.seed(stations_per_commune=1)
    c = _login(lite, "admin")
    c.http.cookies.set("cc_lang", "en")
    for path in (
        "/schedules",
        "/schedules/new",
        "/bulletins/tts",
        "/led",
        "/ops",
        "/alarms",
        "/reports",
        "/audit",
        "/emergency",
    ):
        page = c.http.get(path).text
        assert '<html lang="en">' in page and "Log out" in page and "Lịch phát" not in page, path
