"""An anonymous client gets 401 from every operation of the API but the few that are public
on purpose (docs/security.md, "An anonymous client").

A sweep over /openapi.json rather than a list of routes: an endpoint added later without
`current_user`/`require_role` fails here until it is protected or named below with a reason.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from fastapi.testclient import TestClient

from communecast.mosquitto import free_port
from controller.app import create_app
from controller.core.config import Settings

# (method, path) -> why it answers without a login.
PUBLIC = {
    ("POST", "/api/v1/auth/token"): "the login itself",
    ("POST", "/api/v1/enroll"): "a station redeems its one-time enrollment code",
    ("GET", "/api/v1/time"): "stations set their clock before they hold credentials",
    ("GET", "/healthz"): "the load balancer's and supervisor's probe",
    ("GET", "/metrics"): "Prometheus: refused by client address, not by login (docs/health.md)",
    ("GET", "/media/{sha256}"): "stations download audio by its SHA-256, verified before play",
    ("GET", "/updates/files/{sha256}"): "stations download signed update bundles by hash",
    ("GET", "/api/v1/live/{stream_id}/stream"): "a per-session X-Stream-Token, only in signed states",
}


def test_every_other_operation_refuses_an_anonymous_client(tmp_path: Path, database_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "ctl", database_url=database_url,
                        admin_password="quan-tri-" + secrets.token_hex(4),
                        mqtt_port=free_port(), mqtt_client_id=f"anon-{secrets.token_hex(3)}")  # fmt: skip
    app = create_app(settings)
    answered: dict[tuple[str, str], int] = {}
    with TestClient(app) as client:
        for path, operations in app.openapi()["paths"].items():
            for method in operations:
                url = re.sub(r"\{[^}]+\}", "1", path)  # an id that exists or not: auth comes first
                answered[(method.upper(), path)] = client.request(method.upper(), url).status_code
    assert len(answered) >= 70
    open_ones = {op: status for op, status in answered.items() if status != 401}
    assert set(open_ones) <= set(PUBLIC), {op: s for op, s in open_ones.items() if op not in PUBLIC}
    for op, status in open_ones.items():
        # With a made-up id or hash, nothing but the clock and the health probe hands out data.
        assert status != 200 or op in {("GET", "/api/v1/time"), ("GET", "/healthz")}, (op, status)
