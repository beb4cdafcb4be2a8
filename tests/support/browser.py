"""The panel as a browser sees it: a form-speaking HTTP client and a headless Chromium.

`PanelClient` logs in through the real /login form (CSRF cookie + hidden field) and
posts forms with the page's CSRF token, like a browser would. `chromium()` starts
Debian's /usr/bin/chromium through Playwright (never Playwright's own browser download);
without it the browser tests skip with the reason, except under CI=true where they fail.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from communecast.mosquitto import free_port
from controller.app import create_app
from controller.core.config import Settings
from controller.db.models import Area, AreaGroupMember, User
from controller.services import devices
from controller.web import accounts

CHROMIUM = os.environ.get("COMMUNECAST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
IN_CI = os.environ.get("CI", "").lower() == "true"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "panel"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
ADMIN_PW = "quan-tri-" + secrets.token_hex(4)
PW = "mat-khau-an-toan-1"


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "page has no CSRF field"
    return m.group(1)


class PanelClient:
    """Wraps a Starlette TestClient or an httpx.Client (same interface) as one logged-in user."""

    def __init__(self, http: Any) -> None:
        self.http = http

    def login(self, username: str, password: str, *, expect: int = 303) -> Any:
        page = self.http.get("/login")
        assert page.status_code == 200, page.text
        r = self.http.post("/login", data={"username": username, "password": password,
                                           "csrf": csrf_of(page.text), "next": "/"},
                           follow_redirects=False)  # fmt: skip
        assert r.status_code == expect, (r.status_code, r.text[:500])
        return r

    def csrf(self, path: str = "/") -> str:
        r = self.http.get(path)
        assert r.status_code == 200, (path, r.status_code)
        return csrf_of(r.text)

    def post_form(self, path: str, data: dict[str, Any] | None = None, *, csrf_from: str = "/",
                  files: Any = None) -> Any:
        body = {"csrf": self.csrf(csrf_from), **(data or {})}
        return self.http.post(path, data=body, files=files, follow_redirects=False)


class Panel:
    """One in-process controller (its MQTT side points at a closed port: not needed here)."""

    def __init__(self, tmp_path: Path, database_url: str, **settings: Any) -> None:
        """`settings`: more controller settings (a broker to talk to: mqtt_port, mqtt_username...)."""
        self.settings = Settings(**{
            "data_dir": tmp_path / "ctl", "database_url": database_url, "admin_password": ADMIN_PW,
            "mqtt_port": free_port(), "mqtt_client_id": f"panel-test-{secrets.token_hex(4)}",
            "login_max_failures": 3, **settings,
        })  # fmt: skip
        self.app = create_app(self.settings)
        self.clients: list[TestClient] = []

    @property
    def rt(self) -> Any:
        return self.app.state.runtime

    def bearer(self, username: str, password: str = PW) -> dict[str, str]:
        """API headers of a user logged in through POST /api/v1/auth/token (Vietnamese replies)."""
        login = {"username": username, "password": password}
        token = self.client().http.post("/api/v1/auth/token", data=login)
        return {"Authorization": f"Bearer {token.json()['access_token']}", "Accept-Language": "vi"}

    def client(self) -> PanelClient:
        """Another browser on the same running app (the first client ran its lifespan).

        Its requests are served on the app's own event loop (the lifespan's portal), as uvicorn
        serves every request: a TestClient left to itself starts a new loop per request, and
        the MQTT bus, which lives on the lifespan's loop, never wakes a PUBACK wait begun on
        another loop (every signed command sent from such a request took the bus's 10 s
        timeout)."""
        http = TestClient(self.app, base_url="http://testserver")
        if self.clients:
            http.portal = self.clients[0].portal
        return PanelClient(http)

    def seed(self, stations_per_commune: int = 2) -> dict[str, Any]:
        with self.rt.db.session() as s:
            # Two-tier (docs/areas.md): communes under the province; `district` is a group of
            # communes (a former district) whose operator has the role `group`.
            province = Area(level="province", name="Tỉnh Phú Thọ", code="25")
            district = Area(level="group", name="Khu vực Tam Dương (huyện cũ)", parent=province)
            hop_hoa = Area(level="commune", kind="xa", name="Xã Hợp Hòa", parent=province)
            kim_long = Area(level="commune", kind="xa", name="Xã Kim Long", parent=province)
            other_d = Area(level="group", name="Khu vực Lập Thạch (huyện cũ)", parent=province)
            xuan_hoa = Area(level="commune", kind="xa", name="Xã Xuân Hòa", parent=province)
            s.add_all([province, district, hop_hoa, kim_long, other_d, xuan_hoa])
            s.flush()
            s.add_all([AreaGroupMember(group_id=district.id, commune_id=hop_hoa.id),
                       AreaGroupMember(group_id=district.id, commune_id=kim_long.id),
                       AreaGroupMember(group_id=other_d.id, commune_id=xuan_hoa.id)])
            s.flush()
            ids: dict[str, Any] = {"province": province.id, "district": district.id, "hop_hoa": hop_hoa.id,
                                   "kim_long": kim_long.id, "xuan_hoa": xuan_hoa.id,
                                   "other_group": other_d.id, "devices": {}}
            for commune in (hop_hoa, kim_long, xuan_hoa):
                for i in range(stations_per_commune):
                    d = devices.create(s, devices.DeviceCreate(
                        name=f"Cụm loa {i + 1} – {commune.name}", kind="speaker", commune_id=commune.id,
                        lat=21.3 + commune.id * 0.01 + i * 0.001, lon=105.5 + i * 0.002), None)
                    ids["devices"].setdefault(commune.id, []).append(d.id)
            admin = s.scalars(select(User).where(User.username == "admin")).one()
            for name, role, area in [
                ("canbo.hophoa", "commune", hop_hoa.id), ("canbo.huyen", "group", district.id),
                ("nguoixem", "viewer", None), ("kythuat", "technician", None),
                ("duyet", "approver", province.id),
            ]:
                accounts.create_user(s, admin, name, PW, role, area)
        return ids

    def close(self) -> None:
        for c in reversed(self.clients):
            c.__exit__(None, None, None)


@contextmanager
def running_panel(tmp_path: Path, database_url: str, **settings: Any) -> Iterator[Panel]:
    """An in-process controller (lifespan run by the first client) for one test."""
    p = Panel(tmp_path, database_url, **settings)
    first = TestClient(p.app, base_url="http://testserver")
    first.__enter__()  # runs the lifespan: migrations, admin account
    p.clients.append(first)
    try:
        yield p
    finally:
        p.close()


def chromium_problem() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium; scripts/setup.sh does)"
    return None


def skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests must run, not skip)")
    pytest.skip(reason)


@asynccontextmanager
async def chromium(extra_args: Sequence[str] = ()) -> AsyncIterator[Any]:
    """A fresh headless Chromium (own profile dir); yields the Playwright Browser."""
    problem = chromium_problem()
    if problem:
        skip_or_fail(problem)
    from playwright.async_api import Error, async_playwright

    async with async_playwright() as pw:
        try:
            # Playwright gives every launch a fresh temporary profile (user data dir).
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=[*CHROMIUM_ARGS, *extra_args])
        except Error as exc:
            skip_or_fail(f"Chromium at {CHROMIUM} did not start: {str(exc).splitlines()[0]}")
        try:
            yield browser
        finally:
            await browser.close()


async def shot(page: Any, name: str) -> Path:
    """Keep a full-page screenshot under test-artifacts/panel/ (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def open_menu(page: Any) -> None:
    """On a phone-wide page the links sit behind "Menu" (base.html, shell.js): open it if it is shut."""
    button = page.locator("#menu-button")
    shut = await button.count() and await button.is_visible()
    if shut and await button.get_attribute("aria-expanded") != "true":
        await button.click()
        await page.wait_for_selector("#site-menu nav", state="visible")
