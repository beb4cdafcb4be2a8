"""/account/alerts (issue 20 item 9): a user sets where their own alarms go; an admin sets anyone's;
another user's settings are refused (403) to everyone else, an anonymous client is sent to log in;
bad input is a clear 422 in Vietnamese (and English), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.db.models import User
from controller.db.models_alerts import UserAlertPrefs
from tests.support.browser import ADMIN_PW, PW, Panel, PanelClient, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        p.seed(stations_per_commune=1)
        yield p


def login(panel: Panel, username: str, password: str = PW) -> PanelClient:
    c = panel.client()
    c.login(username, password)
    return c


def uid(panel: Panel, username: str) -> int:
    with panel.rt.db.session() as s:
        return s.scalars(select(User.id).where(User.username == username)).one()


def save(c: PanelClient, user_id: int, **fields: str) -> object:
    return c.post_form("/account/alerts", {"user_id": str(user_id), **fields}, csrf_from="/account/alerts")


def prefs(panel: Panel, user_id: int) -> UserAlertPrefs | None:
    with panel.rt.db.session() as s:
        row = s.get(UserAlertPrefs, user_id)
        if row is not None:
            s.expunge(row)
        return row


def test_own_settings_and_an_admin_for_someone_else(panel: Panel) -> None:
    me = uid(panel, "canbo.hophoa")
    c = login(panel, "canbo.hophoa")
    assert 'id="alert-prefs"' in c.http.get("/account/alerts").text
    r = save(c, me, phone="0912 345 678", sms="1", quiet_start="22:00", quiet_end="06:00")
    assert r.status_code == 303  # type: ignore[attr-defined]
    p = prefs(panel, me)
    assert p is not None and (p.phone, p.sms, p.zalo, p.quiet_start, p.quiet_end) == (
        "0912345678",
        True,
        False,
        "22:00",
        "06:00",
    )
    assert 'value="0912345678"' in c.http.get("/account/alerts").text
    admin = login(panel, "admin", ADMIN_PW)
    viewer = uid(panel, "nguoixem")
    assert 'value="nguoixem"' not in admin.http.get("/account/alerts").text  # options are ids
    assert save(admin, viewer, zalo_user_id="4412345678901", zalo="1").status_code == 303  # type: ignore[attr-defined]
    assert prefs(panel, viewer) is not None and prefs(panel, viewer).zalo_user_id == "4412345678901"  # type: ignore[union-attr]


def test_nobody_else_reads_or_sets_my_settings(panel: Panel) -> None:
    me = uid(panel, "canbo.hophoa")
    save(login(panel, "canbo.hophoa"), me, phone="0912345678", sms="1")
    for other in ("canbo.huyen", "nguoixem", "kythuat"):
        c = login(panel, other)
        assert c.http.get(f"/account/alerts?user_id={me}").status_code == 403
        # Not even by posting someone else's id with their own valid CSRF token.
        assert save(c, me, phone="0999999999", sms="1").status_code == 403  # type: ignore[attr-defined]
    assert prefs(panel, me).phone == "0912345678"  # type: ignore[union-attr]
    anon = panel.client()
    assert anon.http.get("/account/alerts", follow_redirects=False).status_code in (302, 303)
    r = anon.http.post("/account/alerts", data={"user_id": str(me)}, follow_redirects=False)
    assert r.status_code in (302, 303, 401, 403)


@pytest.mark.parametrize(("fields", "vi", "en"), [
    ({"phone": "09-abc", "sms": "1"}, "Số điện thoại “09-abc” không hợp lệ", "“09-abc” is not valid"),
    ({"sms": "1"}, "hãy nhập số điện thoại", "enter a phone number"),
    ({"zalo": "1", "zalo_user_id": "+84912"}, "Mã người dùng Zalo chỉ gồm chữ số", "digits only"),
    ({"quiet_start": "22:00"}, "Giờ yên lặng phải có cả giờ bắt đầu", "Quiet hours need both"),
    ({"quiet_start": "25:00", "quiet_end": "06:00"}, "Giờ yên lặng phải có", "HH:MM"),
])  # fmt: skip
def test_bad_input_is_a_clear_422(panel: Panel, fields: dict[str, str], vi: str, en: str) -> None:
    me = uid(panel, "canbo.hophoa")
    c = login(panel, "canbo.hophoa")
    r = save(c, me, **fields)
    assert r.status_code == 422 and vi in r.text  # type: ignore[attr-defined]
    c.http.get("/lang?to=en")
    r = save(c, me, **fields)
    assert r.status_code == 422 and en in r.text  # type: ignore[attr-defined]
    assert prefs(panel, me) is None
