"""Issue 8: broker passwords for many stations in one request (an import day, a fleet).

`POST /api/v1/device-credentials` rotates every listed station's password in one
transaction and one broker update, on both broker account backends (the dynamic-security
plugin, and password/ACL files + SIGHUP) and both databases. A real MQTT client then logs
in with what was issued; an unknown station id refuses the whole batch and changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from testkit.harness import System


@pytest.fixture(params=[None, False], ids=["dynsec", "files"])
async def system_on(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> AsyncIterator[System]:
    sys_ = System(tmp_path / "system", database_url, broker_dynsec=request.param)
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()


async def _new_stations(system: System, n: int) -> list[int]:
    communes = [a for a in await system.api_json("GET", "/api/v1/areas") if a["level"] == "commune"]
    return [(await system.api_json("POST", "/api/v1/devices", json={
        "name": f"Cụm loa nhập hàng loạt {i}", "kind": "speaker", "commune_id": communes[0]["id"],
    }))["id"] for i in range(n)]  # fmt: skip


async def _logs_in(system: System, config: dict[str, Any]) -> bool:
    try:
        async with aiomqtt.Client("127.0.0.1", config["mqtt_port"], identifier=config["uid"],
                                  username=config["mqtt_username"], password=config["mqtt_password"]):
            return True
    except aiomqtt.MqttError:
        return False


async def test_many_stations_get_working_passwords_in_one_request(system_on: System) -> None:
    system = system_on
    ids = await _new_stations(system, 3)
    old = await system.api_json("POST", f"/api/v1/devices/{ids[0]}/credentials")
    assert await _logs_in(system, old["agent_config"])

    body = await system.api_json("POST", "/api/v1/device-credentials", json={"device_ids": ids})
    issued = {e["device"]["id"]: e["agent_config"] for e in body["issued"]}
    assert sorted(issued) == sorted(ids)
    for config in issued.values():
        assert await _logs_in(system, config), f"{config['uid']} cannot log in with its new password"
    assert not await _logs_in(system, old["agent_config"]), "the rotated password still works"


async def test_an_unknown_station_refuses_the_whole_batch(system_on: System) -> None:
    system = system_on
    (known,) = await _new_stations(system, 1)
    before = await system.api_json("POST", f"/api/v1/devices/{known}/credentials")

    r = await system.api("POST", "/api/v1/device-credentials", json={"device_ids": [known, 999_999]},
                         headers={"Accept-Language": "vi"})
    assert r.status_code == 404
    assert "999999" in r.json()["detail"] and "Không tìm thấy" in r.json()["detail"]
    assert await _logs_in(system, before["agent_config"]), "a refused batch changed a password"

    r = await system.api("POST", "/api/v1/device-credentials", json={"device_ids": []})
    assert r.status_code == 422
