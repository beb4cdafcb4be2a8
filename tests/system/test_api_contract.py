"""The typed HTTP contract (issue 17): every /api/v1 operation in /openapi.json declares what it
answers, and real replies of the main flows match what is declared, key for key.

The first test reads the description of a real app; the second drives a whole system (Mosquitto,
the controller process, simulated stations) and checks each reply against the schema the
controller itself publishes, with a JSON Schema validator and a walk that refuses any key the
schema does not name (the models allow extra keys so nothing is ever dropped on the wire: this
is where an undeclared key is caught).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
from fastapi.testclient import TestClient

from communecast.mosquitto import free_port
from controller.app import create_app
from controller.core.config import Settings
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone

NO_BODY = {"204"}


def _spec(tmp_path: Path) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path / "ctl", database_url=f"sqlite:///{tmp_path / 'c.db'}",
                        admin_password="quan-tri-" + secrets.token_hex(4), api_docs_public=True,
                        mqtt_port=free_port(), mqtt_client_id=f"contract-{secrets.token_hex(3)}")  # fmt: skip
    response = TestClient(create_app(settings)).get("/openapi.json")
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    return spec


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _says_something(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Not `{}`: an object with properties, an array of something, or a typed scalar."""
    schema = _resolve(spec, schema)
    if schema.get("type") == "array":
        return _says_something(spec, schema.get("items") or {})
    if schema.get("type") == "object" or "properties" in schema:
        return bool(schema.get("properties"))
    return bool(schema.get("type") or schema.get("anyOf"))


def test_every_api_operation_declares_its_response_schema(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    checked, missing = 0, []
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            label = f"{method.upper()} {path}"
            success = [code for code in op["responses"] if code.startswith("2")]
            if not success:
                missing.append(f"{label}: no success response")
            for code in success:
                if code in NO_BODY:
                    continue
                content = op["responses"][code].get("content") or {}
                schemas = [media.get("schema") or {} for media in content.values()]
                if not schemas or not all(_says_something(spec, s) for s in schemas):
                    missing.append(f"{label} {code}: {content}")
            checked += 1
    assert checked >= 65, checked
    assert missing == [], "\n".join(missing)


def test_json_errors_are_documented_with_their_body(tmp_path: Path) -> None:
    """Where a route documents a refusal (404, the policy's 422) the body model is named."""
    spec = _spec(tmp_path)
    op = spec["paths"]["/api/v1/broadcasts"]["post"]
    refusal = _resolve(spec, op["responses"]["422"]["content"]["application/json"]["schema"])
    assert {"detail", "code", "rule"} <= set(refusal["properties"])
    got = spec["paths"]["/api/v1/broadcasts/{broadcast_id}"]["get"]["responses"]["404"]
    assert "detail" in _resolve(spec, got["content"]["application/json"]["schema"])["properties"]


class Contract:
    """The published /openapi.json of a running controller, and checks of replies against it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.checked: list[str] = []

    def schema(self, method: str, path: str, status: int) -> dict[str, Any]:
        op = self.spec["paths"][path][method.lower()]
        schema: dict[str, Any] = op["responses"][str(status)]["content"]["application/json"]["schema"]
        return schema

    def check(self, method: str, path: str, status: int, body: Any) -> Any:
        schema = self.schema(method, path, status)
        validator = jsonschema_rs.validator_for({**schema, "components": self.spec["components"]})
        errors = [e.message for e in validator.iter_errors(body)]
        assert errors == [], f"{method} {path}: {errors}"
        undeclared = self._undeclared(schema, body, "$")
        assert undeclared == [], f"{method} {path}: keys the schema does not name: {undeclared}"
        self.checked.append(f"{method} {path}")
        return body

    def _undeclared(self, schema: dict[str, Any], value: Any, at: str) -> list[str]:
        schema = _resolve(self.spec, schema)
        if "anyOf" in schema:
            # the branch that fits: an object for an object, an array for an array
            for branch in schema["anyOf"]:
                kind = _resolve(self.spec, branch).get("type")
                if (kind, type(value)) in (("object", dict), ("array", list)):
                    return self._undeclared(branch, value, at)
            return []
        if isinstance(value, list) and "items" in schema:
            items = schema["items"]
            return [k for i, v in enumerate(value) for k in self._undeclared(items, v, f"{at}[{i}]")]
        props = schema.get("properties")
        if not isinstance(value, dict) or not props:
            return []
        out = [f"{at}.{k}" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                out += self._undeclared(props[k], v, f"{at}.{k}")
        return out


async def _call(system: System, contract: Contract, method: str, url: str, path: str, status: int,
                **kwargs: Any) -> Any:  # fmt: skip
    r = await system.api(method, url, **kwargs)
    assert r.status_code == status, r.text
    return contract.check(method, path, status, r.json())


async def test_main_flows_answer_what_the_contract_says(system: System, tmp_path: Path) -> None:
    contract = Contract((await system.api("GET", "/openapi.json")).json())
    stations = await system.add_stations(2)
    commune = system.communes[0]["id"]

    await _call(system, contract, "GET", "/api/v1/auth/me", "/api/v1/auth/me", 200)
    await _call(system, contract, "GET", "/api/v1/time", "/api/v1/time", 200)
    await _call(system, contract, "GET", "/api/v1/areas", "/api/v1/areas", 200)
    await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                     lambda ds: sum(d["online"] for d in ds) == 2, timeout=30, what="stations online")
    await _call(system, contract, "GET", "/api/v1/devices", "/api/v1/devices", 200)

    with tone(tmp_path / "bulletin.wav", freq=660, seconds=1.5).open("rb") as fh:
        media = await _call(system, contract, "POST", "/api/v1/media", "/api/v1/media", 201,
                            files={"file": ("bulletin.wav", fh)})  # fmt: skip
    await _call(system, contract, "GET", f"/api/v1/media/{media['sha256']}", "/api/v1/media/{sha256}", 200)
    await _call(system, contract, "GET", "/api/v1/media", "/api/v1/media", 200)

    # A normal broadcast: created, read back with every station's state, listed, proof of play.
    start_at = datetime.now(UTC) + timedelta(seconds=3)
    bc = await _call(system, contract, "POST", "/api/v1/broadcasts", "/api/v1/broadcasts", 201, json={
        "title": "Bản tin hợp đồng", "media_sha256": media["sha256"], "targets": {"all": True},
        "start_at": start_at.isoformat(), "priority": "normal"})  # fmt: skip
    assert bc["stations"] == 2 and bc["approved"] is True and bc["policy"] == {"status": "ok"}
    for st in stations:
        await st.sink.wait_for(lambda p: True, timeout=20)
    detail = await eventually(lambda: system.api_json("GET", f"/api/v1/broadcasts/{bc['id']}"),
                              lambda b: b["counts"].get("played") == 2, timeout=20, what="2 played")
    contract.check("GET", "/api/v1/broadcasts/{broadcast_id}", 200, detail)
    assert detail["emergency"] is None and detail["skew"]["stations"] == 2
    assert len(detail["station_states"]) == 2 and detail["acked"] == 2
    listed = await _call(system, contract, "GET", "/api/v1/broadcasts", "/api/v1/broadcasts", 200)
    assert "stations" not in listed[0]  # a listed broadcast has no delivery rows: the key stays absent
    log = await eventually(lambda: system.api_json("GET", f"/api/v1/play-log?broadcast_id={bc['id']}"),
                           lambda rows: len(rows) == 2, timeout=15, what="2 play-log rows")
    contract.check("GET", "/api/v1/play-log", 200, log)

    # An emergency to one commune: the group fan-out, its summary, its cancel.
    em = await _call(system, contract, "POST", "/api/v1/broadcasts", "/api/v1/broadcasts", 201, json={
        "title": "Cảnh báo khẩn", "media_sha256": media["sha256"], "targets": {"communes": [commune]},
        "priority": "emergency"})  # fmt: skip
    assert em["policy"] == {"status": "exempt", "reason": "emergency"} and em["emergency"]["topics"]
    em_detail = await _call(system, contract, "GET", f"/api/v1/broadcasts/{em['id']}",
                            "/api/v1/broadcasts/{broadcast_id}", 200)  # fmt: skip
    assert em_detail["emergency"]["sent_by"] == "admin"
    await _call(system, contract, "POST", f"/api/v1/broadcasts/{em['id']}/cancel",
                "/api/v1/broadcasts/{broadcast_id}/cancel", 200)  # fmt: skip

    # A schedule (its saved reply and the listing), an LED dry run, a station's events.
    saved = await _call(system, contract, "POST", "/api/v1/schedules", "/api/v1/schedules", 201, json={
        "title": "Bản tin sáng", "media": [media["sha256"]], "rrule": "FREQ=DAILY;BYHOUR=6;BYMINUTE=0",
        "dtstart": "2030-01-01T06:00:00", "targets": {"all": True}})  # fmt: skip
    assert saved["stations"] == 2 and isinstance(saved["conflicts"], list)
    await _call(system, contract, "GET", "/api/v1/schedules", "/api/v1/schedules", 200)
    await _call(system, contract, "GET", f"/api/v1/communes/{commune}/policy",
                "/api/v1/communes/{commune_id}/policy", 200)  # fmt: skip
    await _call(system, contract, "GET", f"/api/v1/devices/{stations[0].device_id}/events",
                "/api/v1/devices/{device_id}/events", 200)  # fmt: skip
    await _call(system, contract, "GET", "/api/v1/reports/audit", "/api/v1/reports/audit", 200)
    for path in ("/api/v1/reports/monthly", "/api/v1/provincial/status", "/api/v1/alarms", "/api/v1/cap",
                 "/api/v1/led-messages", "/api/v1/relays", "/api/v1/relay-sources", "/api/v1/updates"):
        await _call(system, contract, "GET", path, path, 200)
    assert len(set(contract.checked)) >= 25  # distinct operations checked
