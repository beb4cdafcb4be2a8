"""The dynamic-security requests stay under the broker's packet limit whatever the batch size.

1,000 station accounts in one request crossed Mosquitto's max_packet_size (1 MiB) once a topic
was added to every station role: the broker dropped the admin connection and the credentials
request hung. `DynsecAdmin.execute` now splits a batch into requests under a byte budget."""

from __future__ import annotations

import json

from controller.services.broker_auth import DYNSEC_REQUEST_MAX_BYTES, _chunks_under, station_acls
from protocol.limits import MAX_PACKET_SIZE


def test_a_thousand_station_accounts_go_in_requests_under_the_packet_limit() -> None:
    commands = []
    for i in range(1000):
        uid = f"spk-{i:06x}"
        commands += [{"command": "createRole", "rolename": f"station-{uid}",
                      "acls": station_acls(uid, {"province": 1, "commune": 7})},
                     {"command": "createClient", "username": uid, "password": "x" * 40, "clientid": uid}]
    assert len(json.dumps({"commands": commands})) > MAX_PACKET_SIZE  # one request would be refused
    chunks = _chunks_under(commands, DYNSEC_REQUEST_MAX_BYTES)
    assert [c for chunk in chunks for c in chunk] == commands  # all of them, in order
    assert all(len(json.dumps({"commands": chunk})) < DYNSEC_REQUEST_MAX_BYTES for chunk in chunks)
    assert _chunks_under([], DYNSEC_REQUEST_MAX_BYTES) == []
