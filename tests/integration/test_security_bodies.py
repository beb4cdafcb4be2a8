"""Request bodies are judged before they are read (issue 16, item 5), against a real uvicorn server
over TCP: an oversized `Content-Length` gets 413 and an unauthenticated body on /api/v1 gets 401
while the client has sent only the headers; a chunked body past its limit gets 413 and the
server stops reading, so neither memory nor the upload's temporary file grows with it."""

from __future__ import annotations

import json
import os
import secrets
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from communecast.mosquitto import free_port
from controller.app import create_app
from controller.core.config import Settings
from tests.support.threaded_server import admin_token, serve_in_thread

MiB = 1024 * 1024
MEDIA_LIMIT = 2 * MiB  # small, so the chunked upload test stays quick


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, an admin bearer token): one SQLite controller for the module (no DB logic here)."""
    root = tmp_path_factory.mktemp("bodies")
    settings = Settings(data_dir=root / "ctl", database_url=f"sqlite:///{root / 'c.db'}",
                        admin_password="quan-tri-" + secrets.token_hex(4), media_max_bytes=MEDIA_LIMIT,
                        mqtt_port=free_port(), mqtt_client_id=f"bodies-{secrets.token_hex(3)}")  # fmt: skip
    app = create_app(settings)
    with serve_in_thread(app) as base_url:
        yield base_url, admin_token(app)


def _connect(base_url: str) -> socket.socket:
    u = urlsplit(base_url)
    return socket.create_connection((u.hostname, u.port), timeout=30)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the first response on the socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        rest += chunk
    return status, json.loads(rest[:length])


def _headers_only(
    base_url: str, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """Send only the request's headers (the announced body never comes) and read the answer."""
    with _connect(base_url) as sock:
        sock.sendall(_head(method, path, headers))
        readable, _, _ = select.select([sock], [], [], 10)
        assert readable, f"no answer to {method} {path} within 10 s while its body was still unsent"
        return _read_response(sock, 5)


def _send_chunked(
    base_url: str, path: str, headers: dict[str, str], chunks: Iterable[bytes]
) -> tuple[int, dict[str, Any], int]:
    """A chunked body, stopped as soon as the server answers: (status, JSON, body bytes sent)."""
    sent = 0
    with _connect(base_url) as sock:
        sock.sendall(_head("POST", path, headers | {"Transfer-Encoding": "chunked"}))
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer came: the server stopped reading
            try:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        else:
            sock.sendall(b"0\r\n\r\n")
        status, body = _read_response(sock, 30)
    return status, body, sent


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class _TempFileWatch:
    """The largest regular file this process holds open under /tmp while it runs: the upload's
    spooled temporary file (unlinked, so only /proc/self/fd sees it)."""

    def __init__(self) -> None:
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                    if target.startswith("/tmp/"):
                        self.largest = max(self.largest, os.fstat(int(fd)).st_size)
                except OSError:
                    continue
            time.sleep(0.005)

    def __enter__(self) -> _TempFileWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


JSON = {"Content-Type": "application/json"}


def test_huge_content_length_without_token_is_refused_unread(server: tuple[str, str]) -> None:
    base_url, _ = server
    huge = JSON | {"Content-Length": str(100 * MiB)}
    status, body = _headers_only(base_url, "POST", "/api/v1/schedules", huge)
    assert status == 413 and body["code"] == "request.too_large", body
    assert "1 MB" in body["detail"] and "quá lớn" in body["detail"], body
    multipart = {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(300 * MiB)}
    status, body = _headers_only(base_url, "POST", "/api/v1/media", multipart)
    assert status == 413 and body["code"] == "media.too_large", body


def test_body_without_valid_credentials_gets_401_before_it_is_sent(server: tuple[str, str]) -> None:
    base_url, _ = server
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Cookie": "cc_session=forged"}):
        # Above DRAIN_MAX_BYTES: answered while the body is still unsent, and never read.
        multipart = {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(MEDIA_LIMIT)}
        status, body = _headers_only(base_url, "POST", "/api/v1/media", multipart | headers)
        assert status == 401 and body["code"] == "auth.required", (headers, body)
        # A small body is read and dropped first, so an ordinary client gets the answer intact.
        with _connect(base_url) as sock:
            data = b"{" + b" " * 100_000 + b"}"
            sock.sendall(
                _head("POST", "/api/v1/schedules", JSON | headers | {"Content-Length": str(len(data))})
            )
            sock.sendall(data)
            status, body = _read_response(sock, 10)
        assert status == 401 and body["code"] == "auth.required", (headers, body)


def test_public_and_authenticated_bodies_still_work(server: tuple[str, str]) -> None:
    base_url, token = server
    with _connect(base_url) as sock:
        form = b"username=admin&password=wrong"
        sock.sendall(
            _head(
                "POST",
                "/api/v1/auth/token",
                {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(form))},
            )
            + form
        )
        status, body = _read_response(sock, 10)
    assert status == 401 and body["code"] == "auth.bad_credentials", body  # read and judged, not refused
    with _connect(base_url) as sock:
        area = json.dumps({"level": "province", "name": "Tỉnh Phú Thọ"}).encode()
        sock.sendall(
            _head(
                "POST",
                "/api/v1/areas",
                JSON | {"Authorization": f"Bearer {token}", "Content-Length": str(len(area))},
            )
            + area
        )
        status, body = _read_response(sock, 10)
    assert status == 201, body


def test_chunked_json_past_the_limit_is_413_without_memory_growth(server: tuple[str, str]) -> None:
    base_url, token = server
    before = _rss()
    chunks = (b"[" + b"1," * 32767 + b"1" if i == 0 else b",1" * 32768 for i in range(1024))  # 64 MiB
    status, body, sent = _send_chunked(base_url, "/api/v1/schedules",
                                       JSON | {"Authorization": f"Bearer {token}"}, chunks)  # fmt: skip
    assert status == 413 and body["code"] == "request.too_large", body
    assert sent < 24 * MiB, f"the server read {sent / MiB:.0f} MiB of a body limited to 1 MiB"
    assert _rss() - before < 40 * MiB, f"RSS grew by {(_rss() - before) / MiB:.0f} MiB"


def test_chunked_upload_past_the_limit_stops_the_temporary_file(server: tuple[str, str]) -> None:
    base_url, token = server
    boundary = "xyz"
    start = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp3\"\r\n"
             "Content-Type: audio/mpeg\r\n\r\n").encode()  # fmt: skip
    chunks = (start if i == 0 else b"\0" * 65536 for i in range(64 * 16 + 1))  # 64 MiB of "audio"
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
               "Authorization": f"Bearer {token}"}  # fmt: skip
    with _TempFileWatch() as watch:
        status, body, _ = _send_chunked(base_url, "/api/v1/media", headers, chunks)
    assert status == 413 and body["code"] == "media.too_large", body
    assert watch.largest <= MEDIA_LIMIT + 128 * 1024, f"temporary file reached {watch.largest / MiB:.1f} MiB"
