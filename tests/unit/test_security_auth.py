"""Logins under attack (issue 16): the API token route and the panel share one throttle
(progressive waits per account and per client address, 429 + Retry-After + a Vietnamese
message), tokens die on logout, password change and deactivation, unknown usernames cost
a password hash like known ones, stale throttle rows are purged, and /docs can be private.
Time is injected through the `login_now` dependency, never slept."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from controller.app import create_app
from controller.core.security import dummy_hash
from controller.db.models import User
from controller.db.models_web import LoginThrottle
from controller.services.auth import login_now
from controller.web import accounts
from tests.support.browser import ADMIN_PW, PW, Panel, PanelClient

TOKEN = "/api/v1/auth/token"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class AuthPanel(Panel):
    """The panel test controller with the default login rule and an injected login clock."""

    def __init__(self, tmp_path: Path, database_url: str, **overrides: Any) -> None:
        super().__init__(tmp_path, database_url)
        self.settings = self.settings.model_copy(update={"login_max_failures": 5, **overrides})
        self.app = create_app(self.settings)
        self.clock = Clock()
        self.app.dependency_overrides[login_now] = lambda: self.clock.now

    def from_address(self, host: str) -> TestClient:
        return TestClient(self.app, base_url="http://testserver", client=(host, 40000))


def _start(tmp_path: Path, database_url: str, **overrides: Any) -> AuthPanel:
    p = AuthPanel(tmp_path, database_url, **overrides)
    first = TestClient(p.app, base_url="http://testserver")
    first.__enter__()  # lifespan: migrations, admin account
    p.clients.append(first)
    return p


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[AuthPanel]:
    p = _start(tmp_path, database_url)
    try:
        yield p
    finally:
        p.close()


def _login(http: TestClient, username: str, password: str) -> Any:
    return http.post(TOKEN, data={"username": username, "password": password},
                     headers={"Accept-Language": "vi"})  # fmt: skip


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_fifty_wrong_passwords_then_the_right_one_waits_and_says_how_long(panel: AuthPanel) -> None:
    http = panel.from_address("203.0.113.7")
    statuses = [_login(http, "admin", f"doan-mo-{i}").status_code for i in range(50)]
    assert statuses[:3] == [401, 401, 401] and set(statuses[4:]) == {429}

    right = _login(http, "admin", ADMIN_PW)
    assert right.status_code == 429
    wait = int(right.headers["Retry-After"])
    assert 1 <= wait <= 3600
    assert right.json()["detail"] == f"Đăng nhập sai quá nhiều lần. Vui lòng chờ {wait} giây rồi thử lại."
    # During the wait a right password looks exactly like a wrong one.
    wrong = _login(http, "admin", "van-sai")
    assert (wrong.status_code, wrong.headers["Retry-After"], wrong.json()) == (429, str(wait), right.json())
    en = http.post(TOKEN, data={"username": "admin", "password": ADMIN_PW}, headers={"Accept-Language": "en"})
    assert en.json()["detail"] == f"Too many failed logins. Please wait {wait} seconds and try again."

    panel.clock.advance(wait - 1)
    assert _login(http, "admin", ADMIN_PW).status_code == 429
    panel.clock.advance(1)
    ok = _login(http, "admin", ADMIN_PW)
    assert ok.status_code == 200 and ok.json()["token_type"] == "bearer"


def test_a_stranger_locks_their_own_address_not_the_operator(panel: AuthPanel) -> None:
    stranger, operator = panel.from_address("198.51.100.66"), panel.from_address("192.0.2.10")
    for i in range(15):  # a patient stranger: waits out every delay, then guesses again
        r = _login(stranger, "admin", f"doan-{i}")
        if r.status_code == 429:
            panel.clock.advance(int(r.headers["Retry-After"]))
    r = _login(stranger, "admin", "doan-nua")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3600"  # one guess an hour now
    _operator_gets_in_within_the_account_bound(panel, operator)
    assert _login(stranger, "admin", ADMIN_PW).status_code == 429  # still waiting out its hour

    # A stranger with many addresses pushes the account to its cap, never past it.
    for i in range(30):
        r = _login(panel.from_address(f"100.64.0.{i + 1}"), "admin", f"doan-{i}")
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) <= 300
            panel.clock.advance(int(r.headers["Retry-After"]))
    assert _login(panel.from_address("100.64.1.1"), "admin", "doan-cuoi").headers["Retry-After"] == "300"
    _operator_gets_in_within_the_account_bound(panel, operator)


def _operator_gets_in_within_the_account_bound(panel: AuthPanel, operator: TestClient) -> None:
    r = _login(operator, "admin", ADMIN_PW)
    if r.status_code == 429:
        assert int(r.headers["Retry-After"]) <= 300
        panel.clock.advance(int(r.headers["Retry-After"]))
        r = _login(operator, "admin", ADMIN_PW)
    assert r.status_code == 200


def test_a_burst_of_parallel_guesses_gets_no_more_checks_than_sequential_ones(
    panel: AuthPanel, scrypt_calls: list[int]
) -> None:
    def guess(i: int) -> int:
        return int(_login(panel.from_address("203.0.113.99"), "admin", f"song-song-{i}").status_code)

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = sorted(pool.map(guess, range(24)))
    # Attempts on one account/address are serialized: three free failures, the 4th earns
    # a wait, the other 20 are refused without a password check.
    assert statuses.count(401) == 3 and statuses.count(429) == 21
    assert len(scrypt_calls) == 4
    assert _login(panel.from_address("203.0.113.99"), "admin", ADMIN_PW).status_code == 429


def test_a_user_locked_out_of_the_panel_gets_no_api_token(panel: AuthPanel) -> None:
    panel.seed(stations_per_commune=0)
    for i in range(6):  # six wrong passwords from six browsers: the account has to wait
        PanelClient(panel.from_address(f"10.1.0.{i + 1}")).login("nguoixem", "khong-dung", expect=401)
    page = PanelClient(panel.from_address("10.1.0.99")).login("nguoixem", PW, expect=401)
    assert "Đăng nhập sai quá nhiều lần. Vui lòng chờ 15 giây rồi thử lại." in page.text
    r = _login(panel.from_address("10.9.9.9"), "nguoixem", PW)
    assert r.status_code == 429 and r.headers["Retry-After"] == "15"
    panel.clock.advance(15)
    assert _login(panel.from_address("10.9.9.9"), "nguoixem", PW).status_code == 200


def test_logout_revokes_the_presented_token(panel: AuthPanel) -> None:
    http = panel.client().http
    one = _login(http, "admin", ADMIN_PW).json()["access_token"]
    two = _login(http, "admin", ADMIN_PW).json()["access_token"]
    assert http.get("/api/v1/auth/me", headers=_bearer(one)).status_code == 200
    r = http.post("/api/v1/auth/logout", headers=_bearer(one))
    assert r.status_code == 204 and r.content == b""
    assert http.get("/api/v1/auth/me", headers=_bearer(one)).status_code == 401
    assert http.get("/api/v1/auth/me", headers=_bearer(two)).status_code == 200  # another device
    assert http.post("/api/v1/auth/logout", headers=_bearer(one)).status_code == 401


def test_password_change_revokes_api_tokens(panel: AuthPanel) -> None:
    panel.seed(stations_per_commune=0)
    http = panel.client().http
    token = _login(http, "canbo.hophoa", PW).json()["access_token"]
    browser = panel.client()
    browser.login("canbo.hophoa", PW)
    r = browser.post_form("/account/password", {"current_password": PW, "new_password": "moi-mat-khau-22",
                                                "confirm_password": "moi-mat-khau-22"},
                          csrf_from="/account/password")  # fmt: skip
    assert r.status_code == 303
    assert http.get("/api/v1/auth/me", headers=_bearer(token)).status_code == 401
    fresh = _login(http, "canbo.hophoa", "moi-mat-khau-22").json()["access_token"]
    assert http.get("/api/v1/auth/me", headers=_bearer(fresh)).status_code == 200


def test_deactivation_revokes_api_tokens_for_good(panel: AuthPanel) -> None:
    panel.seed(stations_per_commune=0)
    http = panel.client().http
    token = _login(http, "kythuat", PW).json()["access_token"]
    with panel.rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        uid = s.scalars(select(User.id).where(User.username == "kythuat")).one()
        accounts.set_active(s, admin, uid, False)
    with panel.rt.db.session() as s:
        accounts.set_active(s, s.scalars(select(User).where(User.username == "admin")).one(), uid, True)
    # Re-activating does not bring the old token back: it was revoked, not just ignored.
    assert http.get("/api/v1/auth/me", headers=_bearer(token)).status_code == 401


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


def test_unknown_usernames_cost_a_hash_like_known_ones(panel: AuthPanel, scrypt_calls: list[int]) -> None:
    panel.seed(stations_per_commune=0)
    with panel.rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        accounts.set_active(s, admin, s.scalars(select(User.id).where(User.username == "duyet")).one(), False)

    def cost(username: str) -> tuple[int, float]:
        http = panel.from_address(f"10.7.0.{len(username)}")
        scrypt_calls.clear()
        started = time.perf_counter()
        assert _login(http, username, "sai-mat-khau-9").status_code == 401
        return len(scrypt_calls), time.perf_counter() - started

    known, unknown, inactive = cost("kythuat"), cost("khong-ton-tai"), cost("duyet")
    assert known[0] == unknown[0] == inactive[0] == 1
    with panel.rt.db.session() as s:  # and the unknown name's hash costs what a known one's does
        stored = s.scalars(select(User.password_hash).where(User.username == "kythuat")).one()
    assert dummy_hash().split("$")[:4] == stored.split("$")[:4]
    print(f"login time: known {known[1] * 1000:.1f} ms, unknown {unknown[1] * 1000:.1f} ms, "
          f"inactive {inactive[1] * 1000:.1f} ms")  # fmt: skip


def test_stale_throttle_rows_are_purged(panel: AuthPanel) -> None:
    http = panel.from_address("10.3.3.3")
    for name in ("ma-1", "ma-2"):
        assert _login(http, name, "x-sai-mat-khau").status_code == 401

    def rows() -> int:
        with panel.rt.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(LoginThrottle)) or 0)

    assert rows() == 3  # two usernames and one address
    panel.clock.advance(2 * 3600)
    assert _login(panel.from_address("10.4.4.4"), "ma-3", "x-sai-mat-khau").status_code == 401
    assert rows() == 2  # only the new username and address are left


def _docs_panel(tmp_path: Path, database_url: str, public: bool) -> AuthPanel:
    return _start(tmp_path, database_url, api_docs_public=public)


@pytest.mark.parametrize("public", [True, False])
def test_api_docs_need_a_login_when_not_public(tmp_path: Path, database_url: str, public: bool) -> None:
    p = _docs_panel(tmp_path, database_url, public)
    try:
        anon = p.client().http
        fetch: Callable[[str], Any] = lambda path: anon.get(path, follow_redirects=False)  # noqa: E731
        if public:
            assert fetch("/openapi.json").status_code == 200 and fetch("/docs").status_code == 200
            return
        assert fetch("/openapi.json").status_code == 401
        assert fetch("/docs").status_code in (303, 401) and fetch("/redoc").status_code in (303, 401)
        token = _login(anon, "admin", ADMIN_PW).json()["access_token"]
        spec = anon.get("/openapi.json", headers=_bearer(token))
        assert spec.status_code == 200 and "/api/v1/auth/token" in spec.json()["paths"]
        browser = p.client()
        browser.login("admin", ADMIN_PW)  # a panel session cookie is enough too
        assert browser.http.get("/docs").status_code == 200
        assert browser.http.get("/openapi.json").status_code == 200
    finally:
        p.close()
