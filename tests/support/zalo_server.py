"""A local stand-in for Zalo: the OA message API (v3 "cs") and the OAuth v4 token refresh.

Like Zalo: an access token other than the one issued last is refused with `error` -216 (HTTP 200);
a refresh token works once (it rotates), a used or unknown one is refused with `error` -14014; the
refresh needs the app's `secret_key` header and its app id. Every issued token is random and kept
in `issued`, so a test can check that none of them reached a log.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

APP_ID = "4432100000000000001"
SECRET_KEY = "app-secret-for-tests-only"


class ZaloOaServer:
    def __init__(self, *, first_refresh_token: str, access_token: str | None = None) -> None:
        self.refresh_token = first_refresh_token  # the one refresh token that works now
        self.access_token = access_token  # the one access token that works now
        self.issued: list[str] = [first_refresh_token] + ([access_token] if access_token else [])
        self.refreshes = 0  # successful refreshes
        self.refused_refreshes: list[dict[str, Any]] = []
        self.rejected_messages = 0  # -216 answers
        self.messages: list[tuple[str, dict[str, Any]]] = []  # (token used, body) of delivered ones
        self.lock = threading.Lock()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with srv.lock:
                    if self.path.startswith("/v4/oa/access_token"):
                        answer = srv._refresh(dict(self.headers), parse_qs(raw.decode()))
                    else:
                        answer = srv._message(self.headers.get("access_token", ""), json.loads(raw))
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.message_url = f"{base}/v3.0/oa/message/cs"
        self.oauth_url = f"{base}/v4/oa/access_token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _refresh(self, headers: dict[str, str], form: dict[str, list[str]]) -> dict[str, Any]:
        one = {k: v[0] for k, v in form.items()}
        ok = (headers.get("secret_key") == SECRET_KEY and one.get("app_id") == APP_ID
              and one.get("grant_type") == "refresh_token"
              and one.get("refresh_token") == self.refresh_token)  # fmt: skip
        if not ok:
            self.refused_refreshes.append(one)
            return {"error": -14014, "error_name": "Invalid refresh token",
                    "error_description": "Refresh token is invalid or has been used"}  # fmt: skip
        self.refreshes += 1
        self.access_token = f"at{self.refreshes}-{secrets.token_urlsafe(24)}"
        self.refresh_token = f"rt{self.refreshes}-{secrets.token_urlsafe(24)}"
        self.issued += [self.access_token, self.refresh_token]
        return {"access_token": self.access_token, "refresh_token": self.refresh_token, "expires_in": "90000"}

    def _message(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        if not token or token != self.access_token:
            self.rejected_messages += 1
            return {"error": -216, "message": "Access token is invalid"}
        self.messages.append((token, body))
        data = {"message_id": f"m{len(self.messages)}", "user_id": body["recipient"]["user_id"]}
        return {"error": 0, "message": "Success", "data": data}

    def expire_access_token(self) -> None:
        """Zalo forgets the current access token (expired early, revoked)."""
        with self.lock:
            self.access_token = None

    def texts_to(self, user_id: str) -> list[str]:
        with self.lock:
            return [b["message"]["text"] for _t, b in self.messages if b["recipient"]["user_id"] == user_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
