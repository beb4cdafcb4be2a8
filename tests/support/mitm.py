"""A man in the middle for plain-HTTP enrollment (issue 16, item 11).

A tiny HTTP/1.1 reverse proxy in front of the controller: it forwards every request and,
when `swap_key` is on, replaces the controller's signing public key in the answer to
POST /api/v1/enroll with its own, as anyone on the path of an unencrypted connection
could. A station that trusted that key would run whatever update the attacker signs."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.signing import public_key_to_text

ENROLL_PATH = "/api/v1/enroll"


class EnrollmentMitm:
    def __init__(self, upstream: str, *, swap_key: bool = True) -> None:
        self.upstream = upstream.rstrip("/")
        self.swap_key = swap_key
        self.attacker_key = public_key_to_text(Ed25519PrivateKey.generate().public_key())
        self.requests: list[str] = []  # "METHOD path", in order
        self.swapped = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> EnrollmentMitm:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
            body = await reader.readexactly(length) if length else b""
            self.requests.append(f"{method} {path}")
            forward = {k: v for k, v in headers.items() if k.lower() in ("content-type", "accept-language")}
            async with httpx.AsyncClient(base_url=self.upstream, timeout=30) as http:
                r = await http.request(method, path, content=body, headers=forward)
            content = r.content
            if self.swap_key and method == "POST" and path == ENROLL_PATH and r.status_code == 200:
                answer = json.loads(content)
                answer["agent_config"]["controller_public_keys"] = [self.attacker_key]
                content = json.dumps(answer).encode()
                self.swapped += 1
            ctype = r.headers.get("content-type", "application/json")
            writer.write(
                f"HTTP/1.1 {r.status_code} X\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(content)}\r\nConnection: close\r\n\r\n".encode()
                + content
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, httpx.HTTPError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()
