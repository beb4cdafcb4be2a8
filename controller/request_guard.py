"""Refuse oversized and unauthenticated request bodies before reading them (issue 16, item 5).

Without this, a 100 MiB JSON body sent with no token was parsed (+163 MB of memory) before the
route's dependency answered 401, and a 300 MiB multipart upload was spooled to a temporary file
(293 MB on disk) first: anyone who could reach the port could fill memory or disk.

A pure ASGI middleware (not BaseHTTPMiddleware, which would buffer and wrap the body itself):

* each path has a byte limit: uploads the media limit (plus multipart overhead), the CSV import
  its 8 MiB, CAP its own `cap_max_bytes`, everything else `request_max_bytes`;
* a `Content-Length` above the limit gets 413 before a byte of the body is read;
* a body without `Content-Length` (chunked) is counted as it arrives: past the limit the caller
  gets 413 and the application's next read fails, so no parser or temporary file grows further;
* on /api/v1, a body from a caller with neither a valid bearer token nor a valid panel session
  gets 401 before it is read (the few public routes, login and station enrollment, excepted).

It also refuses, with 422, a NUL character (code 0) in the path, the query string or a JSON or
URL-encoded form body: PostgreSQL cannot store one in a text column (the request answered 500
on PostgreSQL and stored it on SQLite), and no name, text or filter needs one. Uploaded files
(multipart) may hold any bytes and are not looked at. A JSON string holding a backslash
followed by "u0000" is refused too: the price of not parsing the body here.

Answers are sent with `Connection: close`. A refused body of at most DRAIN_MAX_BYTES is read
and thrown away first (nothing kept): closing a socket with unread data sends a TCP reset,
which can destroy the answer before an ordinary client (one that sends the whole body, then
reads) sees it. Larger bodies are answered at once and never read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi import HTTPException
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.core.config import Settings
from controller.core.i18n import human_size, pick_lang, t
from controller.services.auth import user_for_token
from controller.web.sessions import SESSION_COOKIE, load_session

log = logging.getLogger(__name__)

MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around an uploaded file
CSV_IMPORT_MAX_BYTES = 8 * 1024 * 1024  # what POST /api/v1/devices/import reads at most
# /api/v1 routes that take a body from someone not logged in: the login itself, and a station
# redeeming its enrollment code.
PUBLIC_API_BODIES = frozenset({"/api/v1/auth/token", "/api/v1/enroll"})
DRAIN_MAX_BYTES = 1024 * 1024  # refused bodies up to this are read (and dropped) before the answer
# How a NUL arrives in each kind of body (lower-cased bytes); other bodies are not looked at.
NUL_IN_BODY = {b"application/json": (b"\x00", b"\\u0000"),
               b"application/x-www-form-urlencoded": (b"\x00", b"%00")}  # fmt: skip


@dataclass(frozen=True)
class BodyLimit:
    """At most `max_bytes` of body; refused with the message `key` and its parameters."""

    max_bytes: int
    key: str
    params: dict[str, object]


def body_limit(method: str, path: str, settings: Settings) -> BodyLimit:
    """The limit for one request. Uploads get theirs; every other body gets request_max_bytes."""
    media = settings.media_max_bytes
    if method == "POST" and path in ("/api/v1/media", "/bulletins/upload"):
        return BodyLimit(media + MULTIPART_SLACK, "media.too_large", {"limit": human_size(media)})
    if method == "POST" and path == "/api/v1/updates":
        return BodyLimit(media + MULTIPART_SLACK, "request.too_large", {"limit": human_size(media)})
    if method == "POST" and path == "/api/v1/devices/import":
        return BodyLimit(CSV_IMPORT_MAX_BYTES + MULTIPART_SLACK, "request.too_large",
                         {"limit": human_size(CSV_IMPORT_MAX_BYTES)})  # fmt: skip
    if method == "POST" and path == "/api/v1/cap":
        return BodyLimit(settings.cap_max_bytes, "cap.too_large", {"limit": settings.cap_max_bytes})
    limit = settings.request_max_bytes
    return BodyLimit(limit, "request.too_large", {"limit": human_size(limit)})


class BodyRefused(HTTPException):
    """Raised into the application when a streamed body passes its limit or shows a NUL (the
    refusal is already sent).

    An HTTPException, so FastAPI's body parsing passes it through instead of calling it a 400."""

    def __init__(self, status: int) -> None:
        super().__init__(status_code=status)


def nul_in_url(scope: Scope) -> bool:
    """A NUL in the decoded path, or sent raw or percent-encoded in the query string."""
    query = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"\x00" in query or b"%00" in query


def nul_markers(headers: dict[bytes, bytes]) -> tuple[bytes, ...]:
    """What a NUL looks like in this request's body, by its content type (none: not checked)."""
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return NUL_IN_BODY.get(content_type, ())


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return b"chunked" in headers.get(b"transfer-encoding", b"").lower()


def credentials(headers: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    """The bearer token and the panel session cookie, as sent (not yet checked)."""
    auth = headers.get(b"authorization", b"").decode("latin-1")
    bearer = (auth[7:].strip() or None) if auth.lower().startswith("bearer ") else None
    cookies = cookie_parser(headers.get(b"cookie", b"").decode("latin-1"))
    return bearer, cookies.get(SESSION_COOKIE) or None


def authenticated(app: Any, bearer: str | None, cookie: str | None) -> bool:
    """Same rules as controller.api.deps.current_user (bearer) and the panel (session cookie)."""
    if not bearer and not cookie:
        return False
    with app.state.runtime.db.session() as s:
        if user_for_token(s, bearer, datetime.now(UTC)) is not None:
            return True
        return load_session(s, cookie) is not None


class RequestGuard:
    """ASGI middleware: body limits and the authentication check before any body is read."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # ASGI header names are lower-case
        lang = pick_lang(headers.get(b"accept-language", b"").decode("latin-1") or None)
        if nul_in_url(scope):
            await _drain(receive, headers.get(b"content-length", b"").strip())
            await _refuse(send, 422, "request.nul", lang, {})
            return
        if not _has_body(headers):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        limit = body_limit(method, path, self.settings)
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > limit.max_bytes:
            await _drain(receive, declared)
            await _refuse(send, 413, limit.key, lang, limit.params)
            return
        if path.startswith("/api/v1/") and path not in PUBLIC_API_BODIES:
            bearer, cookie = credentials(headers)
            ok = await anyio.to_thread.run_sync(authenticated, scope["app"], bearer, cookie)
            if not ok:
                await _drain(receive, declared)
                await _refuse(send, 401, "auth.required", lang, {}, {"www-authenticate": "Bearer"})
                return
        await self._counted(scope, receive, send, limit, nul_markers(headers), lang)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: BodyLimit,
                       markers: tuple[bytes, ...], lang: str) -> None:  # fmt: skip
        """Run the application with a receive that stops at the limit (chunked or lying bodies)
        and at the first NUL marker (looked for across chunk boundaries)."""
        received = 0
        started = refused = False
        tail = b""  # the end of the previous chunk: a marker may straddle two

        async def refuse(status: int, key: str, params: dict[str, object]) -> BodyRefused:
            nonlocal refused
            if not started and not refused:
                refused = True
                await _refuse(send, status, key, lang, params)
            return BodyRefused(status)

        async def counted_receive() -> Message:
            nonlocal received, tail
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit.max_bytes:
                    raise await refuse(413, limit.key, limit.params)
                if markers:
                    seen = (tail + chunk).lower()
                    if any(m in seen for m in markers):
                        raise await refuse(422, "request.nul", {})
                    tail = seen[-8:]
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out already; whatever the application answers is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyRefused as exc:
            if not refused:
                raise
            log.info("refused %s %s (%d): body over %d bytes or holding a NUL", scope["method"],
                     scope["path"], exc.status_code, limit.max_bytes)


async def _drain(receive: Receive, declared: bytes) -> None:
    """Read and drop a refused body if it is small (see the module docstring); stop past
    DRAIN_MAX_BYTES, so a large or endless body costs at most that much reading."""
    if declared.isdigit() and int(declared) > DRAIN_MAX_BYTES:
        return
    seen = 0
    while seen <= DRAIN_MAX_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _refuse(
    send: Send, status: int, key: str, lang: str, params: dict[str, object],
    extra_headers: dict[str, str] | None = None,
) -> None:  # fmt: skip
    """The project's error shape ({"detail", "code"}), and the connection closed after it."""
    body = json.dumps({"detail": t(key, lang, **params), "code": key}, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    headers += [(k.encode(), v.encode()) for k, v in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
