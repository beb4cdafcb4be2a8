"""Issue 18, item 5: rotating and revoking the controller's signing key with `communecast keys`.

Real broker, controller process, simulated stations; the CLI runs as an operator would run it,
next to the running controller (same data dir and database), which notices within its poll."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from communecast.mosquitto import free_port
from device_agents.enroll import enroll
from firmware_sim.bench import start_simulated_station
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import CommandKind, MediaRef, PlayCommand, ScheduleItem
from protocol.signing import KeyPair, Signer, b64u_decode, key_fingerprint
from testkit.api import Api
from testkit.harness import CONTROLLER_USER, ControllerProcess, Station, System
from testkit.waiting import eventually
from tests.support.audio import tone


@pytest.fixture
async def system(tmp_path: Path, database_url: str) -> AsyncIterator[System]:
    sys_ = System(tmp_path / "system", database_url, controller_env={"COMMUNECAST_KEYRING_POLL_S": "0.3"})
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()
        print("---- controller log (tail) ----\n" + sys_.controller.log_tail(3000))


async def keys_cli(system: System, *args: str) -> str:
    """`communecast keys ...` with the controller's own settings, as an operator on its machine."""
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "communecast.cli", "keys", *args],
                              env={**os.environ, **system.controller.env}, capture_output=True, text=True,
                              timeout=60)

    done = await asyncio.to_thread(run)
    assert done.returncode == 0, done.stderr
    return done.stdout


def play(uid: str, media: dict[str, Any], item_id: str, start: datetime, keys: KeyPair) -> SignedMessage:
    item = ScheduleItem(item_id=item_id, title=item_id, start_at=start, media=[
        MediaRef(sha256=media["sha256"], size=media["size"], duration_s=media["duration_s"])])
    env = Envelope.new(CommandKind.PLAY, f"dev/{uid}", PlayCommand(item=item).model_dump(mode="json"),
                       ttl=timedelta(seconds=60))
    return SignedMessage.seal(env, Signer(keys))


async def publish(system: System, topic: str, *messages: SignedMessage) -> None:
    """As whoever holds broker credentials allowed to write station topics (the controller's)."""
    async with aiomqtt.Client("127.0.0.1", system.broker.port, username=CONTROLLER_USER,
                              password=system.mqtt_password) as client:
        for msg in messages:
            await client.publish(topic, msg.to_bytes(), qos=1)


async def retained_kid(system: System, uid: str) -> str | None:
    """Which key signed the station's retained desired state on the broker."""
    async with aiomqtt.Client("127.0.0.1", system.broker.port, username=CONTROLLER_USER,
                              password=system.mqtt_password) as client:
        await client.subscribe(topics.desired(uid), qos=1)
        try:
            async with asyncio.timeout(2):
                async for message in client.messages:
                    return str(json.loads(message.payload)["kid"])  # type: ignore[arg-type]
        except TimeoutError:
            return None
    return None


async def rejected(system: System, station: Station) -> list[dict[str, Any]]:
    return await system.api_json("GET", f"/api/v1/devices/{station.device_id}/events?kind=rejected")


def has_revoked_key_refusal(events: list[dict[str, Any]]) -> bool:
    return any(e["reason"] == "revoked_key" for e in events)


def key_status(station: Station, kid: str) -> str:
    return station.running.agent.trust.keys.status(kid)


async def test_online_stations_accept_both_keys_in_the_overlap_and_refuse_a_revoked_one_at_once(
        system: System, tmp_path: Path) -> None:
    (st,) = await system.add_stations(1)
    media = await Api.of(system).upload(tone(tmp_path / "t.wav", seconds=1.0))
    old = KeyPair.load(system.signing_key_path)

    out = await keys_cli(system, "rotate", "--overlap", "10m")
    new = KeyPair.load(system.signing_key_path)  # the active key's copy is the new one now
    assert new.kid != old.kid and new.kid in out
    listing = await keys_cli(system, "list")
    assert f"{old.kid}  overlap" in listing and f"{new.kid}  active" in listing

    async def status(kid: str) -> str:
        return key_status(st, kid)

    await eventually(lambda: status(new.kid), lambda s: s == "active", timeout=15, what="the new key learnt")
    assert key_status(st, old.kid) == "overlap"
    await eventually(lambda: retained_kid(system, st.uid), lambda k: k == new.kid, timeout=15,
                     what="the controller signing with the new key")

    # During the overlap both keys are accepted (and play).
    t0 = datetime.now(UTC)
    await publish(system, topics.cmd(st.uid), play(st.uid, media, "old-key", t0 + timedelta(seconds=2), old),
                  play(st.uid, media, "new-key", t0 + timedelta(seconds=4), new))
    store = st.running.agent.store

    async def states() -> tuple[str | None, str | None]:
        return store.item_state("old-key"), store.item_state("new-key")

    await eventually(states, lambda s: s == ("done", "done"), timeout=20, what="both items played")

    # Revoked: refused at once, and the refusal is reported with its reason.
    await keys_cli(system, "revoke", old.kid, "--reason", "test: leaked")
    await eventually(lambda: status(old.kid), lambda s: s == "revoked", timeout=15,
                     what="the revocation learnt")
    late = play(st.uid, media, "after-revoke", datetime.now(UTC) + timedelta(seconds=2), old)
    await publish(system, topics.cmd(st.uid), late)
    refused = await eventually(lambda: rejected(system, st), has_revoked_key_refusal,
                               timeout=15, what="the revoked-key refusal reported")
    ev = next(e for e in refused if e["reason"] == "revoked_key")
    assert ev["ref"] == Envelope.model_validate_json(b64u_decode(late.payload)).id
    assert store.item_state("after-revoke") is None
    assert st.running.agent.rejections.get("revoked_key") == 1
    listing = await keys_cli(system, "list")
    assert f"{old.kid}  revoked" in listing and f"{new.kid}  active" in listing


async def test_a_station_offline_through_the_whole_overlap_converges_and_refuses_the_revoked_key(
        system: System, tmp_path: Path) -> None:
    online, away = await system.add_stations(2)
    api = Api.of(system)
    media = await api.upload(tone(tmp_path / "t.wav", seconds=1.0))
    old = KeyPair.load(system.signing_key_path)
    await away.running.stop()  # switched off before the rotation, back only after the revocation

    await keys_cli(system, "rotate", "--overlap", "2s")
    new = KeyPair.load(system.signing_key_path)

    async def status(station: Station, kid: str) -> str:
        return key_status(station, kid)

    # The overlap ends while the station is away (the online one sees the old key retire) ...
    await eventually(lambda: status(online, old.kid), lambda s: s == "retired", timeout=20,
                     what="the overlap over")
    # ... and the old key is revoked.
    await keys_cli(system, "revoke", old.kid)
    await eventually(lambda: status(online, old.kid), lambda s: s == "revoked", timeout=15, what="revoked")
    await eventually(lambda: retained_kid(system, away.uid), lambda k: k == new.kid, timeout=15,
                     what="the away station's desired state re-signed with the new key")

    # Back, with the store it had: it trusted only the old key; it follows the chain link by link.
    back = Station(away.device_id, away.config, await start_simulated_station(away.config))
    system.stations.append(back)
    await eventually(lambda: status(back, new.kid), lambda s: s == "active", timeout=20,
                     what="the new key learnt")
    assert key_status(back, old.kid) == "revoked"

    # A bulletin signed with the new key plays.
    start = datetime.now(UTC) + timedelta(seconds=3)
    await api.send(media, start, {"devices": [away.device_id]})
    assert await retained_kid(system, away.uid) == new.kid
    played = await back.sink.wait_for(lambda p: True, timeout=20)
    assert played.completed and abs(played.started_at - start.timestamp()) < 0.5

    # One signed with the revoked key (crafted here with the stolen private key) is refused and reported.
    forged = play(away.uid, media, "stolen-key", datetime.now(UTC) + timedelta(seconds=2), old)
    await publish(system, topics.cmd(away.uid), forged)
    await eventually(lambda: rejected(system, back), has_revoked_key_refusal,
                     timeout=15, what="the revoked-key refusal reported")
    assert back.running.agent.store.item_state("stolen-key") is None
    assert len(back.sink.playbacks) == 1

    # A restart does not forget the rotation nor the revocation.
    await back.running.stop()
    again = Station(away.device_id, away.config, await start_simulated_station(away.config))
    system.stations.append(again)
    assert key_status(again, new.kid) == "active" and key_status(again, old.kid) == "revoked"


async def test_a_station_enrolled_after_a_rotation_gets_the_new_key_and_its_fingerprint(
        system: System, tmp_path: Path) -> None:
    old = KeyPair.load(system.signing_key_path)
    await keys_cli(system, "rotate", "--overlap", "0s")
    new = KeyPair.load(system.signing_key_path)

    async def issued() -> dict[str, Any]:
        body = {"name": "Cụm loa sau khi đổi khóa", "kind": "speaker", "commune_id": system.communes[0]["id"]}
        device = await system.api_json("POST", "/api/v1/devices", json=body)
        return dict(await system.api_json("POST", f"/api/v1/devices/{device['id']}/enrollment"),
                    device_id=device["id"])

    # The running controller hands out the new key once it has noticed the rotation.
    code = await eventually(issued, lambda c: c["key_fingerprint"] == key_fingerprint(new.public),
                            timeout=15, what="the enrollment code to name the new key")
    done = await enroll(system.base_url, code["code"], tmp_path / "pi",
                        key_fingerprint=code["key_fingerprint"])
    assert done.config.controller_public_keys == [new.public_text]
    station = Station(code["device_id"], done.config, await start_simulated_station(done.config))
    system.stations.append(station)
    media = await Api.of(system).upload(tone(tmp_path / "t.wav", seconds=1.0))
    start = datetime.now(UTC) + timedelta(seconds=3)
    await Api.of(system).send(media, start, {"devices": [code["device_id"]]})
    assert (await station.sink.wait_for(lambda p: True, timeout=20)).completed
    assert key_status(station, new.kid) == "active" and key_status(station, old.kid) == "unknown"


async def test_two_replicas_sign_with_the_new_key_after_a_rotation(tmp_path: Path, database_url: str) -> None:
    """Replicas share the database (which key is active) and the keys directory (the private
    halves): after `keys rotate` both sign with the new key, whichever one publishes."""
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share one PostgreSQL; SQLite is the single-process default")
    replica = {"COMMUNECAST_MQTT_SHARE_GROUP": "controllers", "COMMUNECAST_KEYRING_POLL_S": "0.3"}
    system = System(tmp_path / "system", database_url,
                    controller_env={**replica, "COMMUNECAST_MQTT_CLIENT_ID": "communecast-controller-a"})
    port = free_port()
    env_b = {**system.controller.env, **replica, "COMMUNECAST_MQTT_CLIENT_ID": "communecast-controller-b",
             "COMMUNECAST_HTTP_PORT": str(port)}
    b = ControllerProcess(env_b, system.root / "controller-b.log", f"http://127.0.0.1:{port}")
    try:
        await system.start()
        b.start()
        await b.wait_healthy()
        (st,) = await system.add_stations(1)
        await keys_cli(system, "rotate", "--overlap", "1h")
        new = KeyPair.load(system.signing_key_path)

        async def signed_by(base_url: str) -> str | None:
            """Ask this replica for a diagnostic; which key signed the command it published."""
            async with aiomqtt.Client("127.0.0.1", system.broker.port, username=CONTROLLER_USER,
                                      password=system.mqtt_password) as client:
                await client.subscribe(topics.cmd(st.uid), qos=1)
                async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
                    r = await http.post(f"/api/v1/devices/{st.device_id}/diagnostics",
                                        headers={"Authorization": f"Bearer {system.token}"},
                                        json={"action": "relay_click", "params": {"hold_s": 0.3}})
                    assert r.status_code == 202, r.text
                try:
                    async with asyncio.timeout(5):
                        async for message in client.messages:
                            return str(json.loads(message.payload)["kid"])  # type: ignore[arg-type]
                except TimeoutError:
                    return None
            return None

        for base_url in (system.base_url, b.base_url):
            await eventually(lambda url=base_url: signed_by(url), lambda kid: kid == new.kid,  # type: ignore[misc]
                             timeout=15, interval=0.3, what=f"{base_url} signing with the new key")
        diagnostics = await system.api_json("GET", f"/api/v1/devices/{st.device_id}/diagnostics")
        assert not any(d["state"] == "rejected" for d in diagnostics)
    finally:
        b.stop()
        await system.stop()
