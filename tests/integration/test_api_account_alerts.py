"""/api/v1/account/alerts (issue 20 item 9), on SQLite and PostgreSQL: the REST twin of the panel's
/account/alerts, through the same use-case functions: a user reads and sets their own; an admin
anyone's (/account/alerts/{user_id}); anyone else gets 403 for another user, exactly as the panel,
and an anonymous client 401; bad input is the panel's 422 message; what the API saved the panel
shows, and the other way round."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.db.models import User
from controller.db.models_alerts import UserAlertPrefs
from tests.support.browser import ADMIN_PW, PW, Panel, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        p.seed(stations_per_commune=1)
        yield p


def uid(panel: Panel, username: str) -> int:
    with panel.rt.db.session() as s:
        return s.scalars(select(User.id).where(User.username == username)).one()


def stored(panel: Panel, user_id: int) -> tuple[object, ...] | None:
    with panel.rt.db.session() as s:
        p = s.get(UserAlertPrefs, user_id)
        return None if p is None else (p.phone, p.zalo_user_id, p.sms, p.zalo, p.quiet_start, p.quiet_end)


def test_own_settings_and_an_admin_for_someone_else(panel: Panel) -> None:
    http = panel.client().http
    me = uid(panel, "canbo.hophoa")
    mine = panel.bearer("canbo.hophoa")
    r = http.get("/api/v1/account/alerts", headers=mine)
    assert r.status_code == 200
    assert r.json() == {"user_id": me, "username": "canbo.hophoa", "phone": "", "zalo_user_id": "",
                        "sms": False, "zalo": False, "quiet_start": "", "quiet_end": "",
                        "critical_kinds": ["offline", "mains_loss"]}  # fmt: skip
    body = {"phone": "0912 345 678", "sms": True, "quiet_start": "22:00", "quiet_end": "6:00"}
    r = http.put("/api/v1/account/alerts", headers=mine, json=body)
    assert r.status_code == 200, r.text
    # Normalized as the panel does.
    assert (r.json()["phone"], r.json()["quiet_end"]) == ("0912345678", "06:00")
    assert stored(panel, me) == ("0912345678", None, True, False, "22:00", "06:00")
    assert http.get("/api/v1/account/alerts", headers=mine).json()["sms"] is True
    # The panel page shows what the API saved (the same use case, the same row).
    page = panel.client()
    page.login("canbo.hophoa", PW)
    assert 'value="0912345678"' in page.http.get("/account/alerts").text

    admin = panel.bearer("admin", ADMIN_PW)
    viewer = uid(panel, "nguoixem")
    r = http.put(f"/api/v1/account/alerts/{viewer}", headers=admin,
                 json={"zalo_user_id": "4412345678901", "zalo": True})  # fmt: skip
    assert r.status_code == 200 and r.json()["username"] == "nguoixem"
    assert stored(panel, viewer) == (None, "4412345678901", False, True, None, None)
    assert http.get(f"/api/v1/account/alerts/{me}", headers=admin).json()["phone"] == "0912345678"
    # The admin's own path and their id in the path are the same settings.
    assert http.get(f"/api/v1/account/alerts/{uid(panel, 'admin')}", headers=admin).json() == \
        http.get("/api/v1/account/alerts", headers=admin).json()  # fmt: skip
    assert http.get("/api/v1/account/alerts/999999", headers=admin).status_code == 404


def test_nobody_else_reads_or_sets_my_settings(panel: Panel) -> None:
    http = panel.client().http
    me = uid(panel, "canbo.hophoa")
    assert http.put("/api/v1/account/alerts", headers=panel.bearer("canbo.hophoa"),
                    json={"phone": "0912345678", "sms": True}).status_code == 200  # fmt: skip
    for other in ("canbo.huyen", "nguoixem", "kythuat"):
        h = panel.bearer(other)
        r = http.get(f"/api/v1/account/alerts/{me}", headers=h)
        assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
        r = http.put(f"/api/v1/account/alerts/{me}", headers=h, json={"phone": "0999999999", "sms": True})
        assert r.status_code == 403
        # Not even for a user id that does not exist (no probing which ids do).
        assert http.get("/api/v1/account/alerts/999999", headers=h).status_code == 403
    assert stored(panel, me) == ("0912345678", None, True, False, None, None)
    # Anonymous: 401, on the own path and on someone else's.
    for path in ("/api/v1/account/alerts", f"/api/v1/account/alerts/{me}"):
        assert http.get(path).status_code == 401
        assert http.put(path, json={"sms": False}).status_code == 401
    assert stored(panel, me) == ("0912345678", None, True, False, None, None)


@pytest.mark.parametrize(("body", "vi", "en"), [
    ({"phone": "09-abc", "sms": True}, "Số điện thoại “09-abc” không hợp lệ", "“09-abc” is not valid"),
    ({"sms": True}, "hãy nhập số điện thoại", "enter a phone number"),
    ({"quiet_start": "22:00"}, "Giờ yên lặng phải có cả giờ bắt đầu", "Quiet hours need both"),
])  # fmt: skip
def test_bad_input_is_the_panels_422(panel: Panel, body: dict[str, object], vi: str, en: str) -> None:
    http = panel.client().http
    h = panel.bearer("canbo.hophoa")
    r = http.put("/api/v1/account/alerts", headers=h, json=body)
    assert r.status_code == 422 and vi in r.json()["detail"]
    r = http.put("/api/v1/account/alerts", headers={**h, "Accept-Language": "en"}, json=body)
    assert r.status_code == 422 and en in r.json()["detail"]
    assert http.put("/api/v1/account/alerts", headers=h, json={"sms": False, "extra": 1}).status_code == 422
    assert stored(panel, uid(panel, "canbo.hophoa")) is None
