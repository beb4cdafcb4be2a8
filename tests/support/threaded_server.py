"""An ASGI app behind a real uvicorn server on 127.0.0.1, run in a background thread.

For tests that drive the app from synchronous code (schemathesis, raw sockets) and need
the real HTTP layer: what uvicorn reads from the socket, what reaches the app and when.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from communecast.mosquitto import free_port


@contextmanager
def serve_in_thread(app: Any, *, start_timeout: float = 60.0) -> Iterator[str]:
    """Yields the base URL; the lifespan (migrations, admin account) has run by then."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=2)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped before it started serving")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def admin_token(app: Any, *, hours: float = 1.0) -> str:
    """A bearer token for the seeded `admin`, minted straight into the database: no login
    request, so a test's own failed logins (a fuzzer's) cannot lock it out."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from controller.core.security import new_token, token_digest
    from controller.db.models import ApiToken, User

    token = new_token()
    with app.state.runtime.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        s.add(ApiToken(token_hash=token_digest(token), user_id=admin.id,
                       expires_at=datetime.now(UTC) + timedelta(hours=hours)))  # fmt: skip
        s.commit()
    return token
