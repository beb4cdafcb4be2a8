"""The dynamic-security admin splits a big request (1,000 stations' accounts are ~2 MB of JSON)
into parts under the broker's max_packet_size: one bigger packet and Mosquitto drops the
connection, so `POST /api/v1/device-credentials` for 1,000 stations only timed out (a 503 after
210 s; `communecast bench fanout --devices 1000` could not provision its fleet)."""

from __future__ import annotations

import json

from controller.services.broker_auth import (
    DYNSEC_REQUEST_MAX_BYTES,
    request_parts,
    station_acls,
    station_role,
)
from protocol.limits import MAX_PACKET_SIZE


def test_a_thousand_accounts_go_in_parts_under_the_packet_limit() -> None:
    sent = []
    for i in range(1000):
        uid, role = f"spk-{i:08x}", station_role(f"spk-{i:08x}")
        sent += [{"command": "createRole", "rolename": role, "acls": station_acls(uid, {"commune": 3}),
                  "correlationData": f"t-{2 * i}"},
                 {"command": "createClient", "username": uid, "password": "x" * 24, "clientid": uid,
                  "roles": [{"rolename": role, "priority": -1}], "correlationData": f"t-{2 * i + 1}"}]
    assert len(json.dumps({"commands": sent})) > MAX_PACKET_SIZE  # the one request it used to be
    parts = request_parts(sent)
    assert len(parts) > 1 and [c for p in parts for c in p] == sent  # all of them, in order
    assert all(len(json.dumps({"commands": p}).encode()) <= DYNSEC_REQUEST_MAX_BYTES for p in parts)
    assert request_parts(sent[:4]) == [sent[:4]] and request_parts([]) == []
    huge = {"command": "createRole", "rolename": "r", "acls": [{"topic": "x" * DYNSEC_REQUEST_MAX_BYTES}]}
    assert request_parts([sent[0], huge, sent[1]]) == [[sent[0]], [huge], [sent[1]]]  # alone, not lost
