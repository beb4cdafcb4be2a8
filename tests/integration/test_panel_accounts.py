"""Web panel accounts (issue 7): login/logout with safe cookies, CSRF on every form, lockout,
password change, the admin's user page. In-process controller on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from controller.db.models import User
from controller.services.auth import login_now
from tests.support.browser import ADMIN_PW, PW, Panel, PanelClient, csrf_of, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def test_login_sets_a_safe_session_cookie_and_logout_needs_csrf(panel: Panel) -> None:
    c = PanelClient(panel.clients[0])
    r = c.http.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/")
    page = c.http.get("/login")
    assert "Đăng nhập" in page.text and 'name="username"' in page.text and 'name="password"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]

    bad = c.login("admin", "sai-mat-khau", expect=401)
    assert "Sai tên đăng nhập hoặc mật khẩu." in bad.text
    # A login POST without the form's CSRF token is refused even with the right password.
    r = c.http.post("/login", data={"username": "admin", "password": ADMIN_PW, "csrf": "x"},
                    follow_redirects=False)
    assert r.status_code == 400

    r = c.login("admin", ADMIN_PW)
    assert r.headers["location"] == "/"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("cc_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; behind HTTPS it is Secure (next test)
    home = c.http.get("/")
    assert home.status_code == 200 and "Tổng quan hệ thống" in home.text

    assert c.http.post("/logout", data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    assert c.http.get("/").status_code == 200  # still logged in
    r = c.post_form("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert c.http.get("/", follow_redirects=False).status_code == 303


def test_cookie_is_secure_behind_https(panel: Panel) -> None:
    c = PanelClient(panel.clients[0])
    page = c.http.get("/login")
    r = c.http.post("/login", data={"username": "admin", "password": ADMIN_PW, "csrf": csrf_of(page.text)},
                    headers={"X-Forwarded-Proto": "https"}, follow_redirects=False)
    assert r.status_code == 303
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("cc_session="))
    assert "Secure" in cookie


def test_repeated_failures_make_the_user_wait(panel: Panel) -> None:
    panel.seed(stations_per_commune=0)
    c = PanelClient(panel.clients[0])
    for _ in range(3):  # three free failures (limit 3 here)
        assert "Sai tên đăng nhập" in c.login("nguoixem", "khong-dung", expect=401).text
    wait = c.login("nguoixem", "khong-dung", expect=401)  # the 4th earns a 15 s wait
    assert "Đăng nhập sai quá nhiều lần. Vui lòng chờ 15 giây rồi thử lại." in wait.text
    # Waiting means waiting: the right password does not get in either.
    assert "Vui lòng chờ" in c.login("nguoixem", PW, expect=401).text
    # Another account from another address is not affected.
    elsewhere = TestClient(panel.app, base_url="http://testserver", client=("10.2.0.1", 1))
    PanelClient(elsewhere).login("kythuat", PW)
    # When the wait has run out, the right password works again.
    panel.app.dependency_overrides[login_now] = lambda: datetime.now(UTC) + timedelta(seconds=15)
    panel.client().login("nguoixem", PW)


def test_password_change_logs_out_other_sessions(panel: Panel) -> None:
    panel.seed(stations_per_commune=0)
    phone, laptop = panel.client(), panel.client()
    phone.login("canbo.hophoa", PW)
    laptop.login("canbo.hophoa", PW)
    r = phone.post_form("/account/password", {"current_password": "sai", "new_password": "moi-mat-khau-22",
                                              "confirm_password": "moi-mat-khau-22"},
                     csrf_from="/account/password")
    assert r.status_code == 422 and "Mật khẩu hiện tại không đúng." in r.text
    r = phone.post_form("/account/password", {"current_password": PW, "new_password": "ngan",
                                              "confirm_password": "ngan"}, csrf_from="/account/password")
    assert r.status_code == 422 and "ít nhất 10 ký tự" in r.text
    r = phone.post_form("/account/password", {"current_password": PW, "new_password": "moi-mat-khau-22",
                                              "confirm_password": "moi-mat-khau-22"},
                     csrf_from="/account/password")
    assert r.status_code == 303
    assert "Đã đổi mật khẩu" in phone.http.get(r.headers["location"]).text
    assert phone.http.get("/", follow_redirects=False).status_code == 200  # this session stays
    assert laptop.http.get("/", follow_redirects=False).status_code == 303  # the other one is gone
    panel.client().login("canbo.hophoa", PW, expect=401)
    panel.client().login("canbo.hophoa", "moi-mat-khau-22")


def test_admin_creates_users_others_cannot(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=0)
    admin = PanelClient(panel.clients[0])
    admin.login("admin", ADMIN_PW)
    page = admin.http.get("/admin/users")
    assert page.status_code == 200 and "Cán bộ cấp xã" in page.text
    r = admin.post_form("/admin/users", {"username": "canbo.kimlong", "password": PW, "role": "commune",
                                         "area_id": str(ids["kim_long"])}, csrf_from="/admin/users")
    assert r.status_code == 303
    listing = admin.http.get("/admin/users").text
    assert "canbo.kimlong" in listing and "Xã Kim Long" in listing
    # A commune role needs a commune: a district is refused with a clear message.
    r = admin.post_form("/admin/users", {"username": "sai.cap", "password": PW, "role": "commune",
                                         "area_id": str(ids["district"])}, csrf_from="/admin/users")
    assert r.status_code == 422 and "đúng cấp" in r.text
    r = admin.post_form("/admin/users", {"username": "canbo.kimlong", "password": PW, "role": "viewer",
                                         "area_id": ""}, csrf_from="/admin/users")
    assert r.status_code == 422 and "đã có" in r.text
    new = panel.client()
    new.login("canbo.kimlong", PW)
    assert "Người dùng" not in new.http.get("/").text.split("<main>")[0]  # no users link in the nav
    assert new.http.get("/admin/users").status_code == 403
    r = new.http.post("/admin/users", data={"csrf": new.csrf(), "username": "x.y.z", "password": PW,
                                             "role": "admin", "area_id": ""}, follow_redirects=False)
    assert r.status_code == 403
    # Disabling an account ends its sessions at once.
    with panel.rt.db.session() as s:
        uid = s.scalars(select(User.id).where(User.username == "canbo.kimlong")).one()
    r = admin.post_form(f"/admin/users/{uid}/active", {"active": "0"}, csrf_from="/admin/users")
    assert r.status_code == 303
    assert new.http.get("/", follow_redirects=False).status_code == 303
    new.login("canbo.kimlong", PW, expect=401)
