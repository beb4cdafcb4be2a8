"""A NUL character (code 0) in a filter, a name or a form field is refused with a clear 422 on
both databases and nothing is stored (controller/request_guard.py). PostgreSQL cannot hold a
NUL in a text column: before the guard, the fuzzer's `GET /api/v1/reports/audit?object_type=…%00…`
answered 500 there, while SQLite stored such names silently."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from communecast.mosquitto import free_port
from controller.app import create_app
from controller.core.config import Settings
from controller.db.models import Area
from tests.support.threaded_server import admin_token, serve_in_thread

NUL_MESSAGE = "ký tự NUL"


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[str, dict[str, str], object]]:
    """(base URL, admin bearer headers, the app) of a controller on the parametrized database."""
    settings = Settings(data_dir=tmp_path / "ctl", database_url=database_url,
                        admin_password="quan-tri-" + secrets.token_hex(4),
                        mqtt_port=free_port(), mqtt_client_id=f"nul-{secrets.token_hex(3)}")  # fmt: skip
    app = create_app(settings)
    with serve_in_thread(app) as base_url:
        yield base_url, {"Authorization": f"Bearer {admin_token(app)}"}, app


def _area_names(app: object) -> list[str]:
    with app.state.runtime.db.session() as s:  # type: ignore[attr-defined]
        return sorted(s.scalars(select(Area.name)))


def test_nul_in_a_filter_is_a_422_not_a_server_error(served: tuple[str, dict[str, str], object]) -> None:
    base_url, admin, _app = served
    r = requests.get(f"{base_url}/api/v1/reports/audit", params={"object_type": "device\x00x"},
                     headers=admin, timeout=30)  # fmt: skip
    assert r.status_code == 422, r.text
    assert NUL_MESSAGE in r.json()["detail"] and r.json()["code"] == "request.nul"
    english = requests.get(f"{base_url}/api/v1/reports/audit?object_type=a%00",
                           headers=admin | {"Accept-Language": "en"}, timeout=30)  # fmt: skip
    assert english.status_code == 422 and "NUL character" in english.json()["detail"]
    # the same filter without the NUL is answered
    ok = requests.get(f"{base_url}/api/v1/reports/audit", params={"object_type": "device"},
                      headers=admin, timeout=30)  # fmt: skip
    assert ok.status_code == 200, ok.text


def test_nul_in_a_json_name_is_refused_and_nothing_is_stored(
    served: tuple[str, dict[str, str], object],
) -> None:
    base_url, admin, app = served
    before = _area_names(app)
    r = requests.post(f"{base_url}/api/v1/areas", json={"level": "province", "name": "Tỉnh\x00Phú Thọ"},
                      headers=admin, timeout=30)  # fmt: skip
    assert r.status_code == 422 and r.json()["code"] == "request.nul", r.text
    assert _area_names(app) == before
    good = requests.post(f"{base_url}/api/v1/areas", json={"level": "province", "name": "Tỉnh Phú Thọ"},
                         headers=admin, timeout=30)  # fmt: skip
    assert good.status_code == 201, good.text
    assert _area_names(app) == sorted([*before, "Tỉnh Phú Thọ"])


def test_nul_split_across_two_chunks_is_still_found(served: tuple[str, dict[str, str], object]) -> None:
    """A chunked body whose `\\u0000` straddles two chunks: the guard keeps the previous tail."""
    base_url, admin, app = served
    before = _area_names(app)
    body = '{"level": "province", "name": "Tỉnh \\u0000 Lạng Sơn"}'.encode()
    cut = body.index(b"\\u0000") + 3  # inside the escape
    u = urlsplit(base_url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        head = (f"POST /api/v1/areas HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: {admin['Authorization']}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        chunks = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n"
                          for c in (body[:cut], body[cut:]))
        sock.sendall(head + chunks + b"0\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            assert data, reply
            reply += data
    assert reply.startswith(b"HTTP/1.1 422"), reply[:200]
    assert _area_names(app) == before
