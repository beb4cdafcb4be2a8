"""TLS between stations and the broker (docs/enrollment.md, TLS): a real private Mosquitto with
a TLS listener and its plain one off, the controller over TLS, a station enrolled over HTTP
that gets the broker's CA and comes online; a broker certificate from another CA or for
another name is refused by the agent, and `agent doctor` says why, in Vietnamese and English.
Storage plays no part here, so SQLite only (the whole file stays well under 40 s)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiomqtt
import pytest

from communecast import tls
from communecast.mosquitto import PrivateMosquitto, free_port
from device_agents.common.config import AgentConfig
from device_agents.common.link import AgentLink
from device_agents.common.store import AgentStore
from device_agents.common.tls import CA_FILE_NAME, agent_context, client_context
from device_agents.doctor import FAIL, OK, SKIP, WARN, Doctor
from device_agents.enroll import enroll
from firmware_sim.bench import start_simulated_station
from testkit.harness import System
from testkit.waiting import eventually
from tests.system.test_enroll_flow import is_online, new_code, new_station


@pytest.fixture
async def tls_system(tmp_path: Path) -> AsyncIterator[System]:
    sys_ = System(tmp_path / "system", f"sqlite:///{tmp_path / 'controller.db'}", tls=True, plain_mqtt=False)
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()
        print("---- controller log (tail) ----\n" + sys_.controller.log_tail(3000))


def other_ca(path: Path) -> Path:
    """A CA that did not sign the broker: what an impostor broker (or a stale file) looks like."""
    tls.save(tls.new_ca("some other CA"), path / "other-ca.pem", path / "other-ca.key")
    return path / "other-ca.pem"


async def test_enrolled_station_online_over_tls_only_and_wrong_broker_refused(
    tls_system: System, tmp_path: Path
) -> None:
    system, broker = tls_system, tls_system.broker
    assert broker.tls_port is not None
    with pytest.raises(ConnectionRefusedError):  # the unencrypted listener is off
        socket.create_connection((broker.host, broker.port), 1).close()

    device = await new_station(system)
    issued = await new_code(system, device["id"])
    enrolled = await enroll(system.base_url, issued["code"], tmp_path / "pi",
                            key_fingerprint=issued["key_fingerprint"])
    config = enrolled.config
    assert config.mqtt_tls and config.mqtt_port == broker.tls_port
    ca_path = tmp_path / "pi" / CA_FILE_NAME
    assert config.mqtt_ca_file == ca_path.resolve()
    assert ca_path.read_bytes() == broker.ca_file.read_bytes()
    assert stat.S_IMODE(ca_path.stat().st_mode) == 0o644
    assert stat.S_IMODE(enrolled.path.stat().st_mode) == 0o600

    # The controller's own link (ingest) and its broker-admin link (the station's account) are
    # TLS too: the station coming online proves both.
    station = await start_simulated_station(config)
    try:
        await eventually(lambda: is_online(system, device["id"]), bool, timeout=10, what="station online")
        assert station.agent.link.connections == 1

        check = await Doctor(config, None, lang="en").check_tls()
        assert check.status == OK, check
        assert check.detail.startswith("TLSv1.") and "CN=localhost" in check.detail
        assert "days left" in check.detail

        # Same station, but trusting another CA: the handshake is refused, the password is never sent.
        wrong = config.model_copy(update={"mqtt_ca_file": other_ca(tmp_path), "data_dir": tmp_path / "wrong"})
        link = AgentLink(
            host=wrong.mqtt_host, port=wrong.mqtt_port, client_id=wrong.uid, username=wrong.mqtt_username,
            password=wrong.mqtt_password, keepalive=5, subscriptions=[], state_topic=f"test/{wrong.uid}",
            birth=lambda: b"{}", last_will=b"{}", store=AgentStore(tmp_path / "wrong.sqlite3"),
            on_message=_ignore, tls=agent_context(wrong),
        )  # fmt: skip
        task = asyncio.create_task(link.run())
        try:
            await eventually(lambda: _value(link.last_error), lambda e: "certificate verify failed" in str(e),
                             timeout=5, what="the link's certificate error")
            assert link.connections == 0 and not link.connected.is_set()
        finally:
            await link.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        vi = await Doctor(wrong, None, lang="vi").run()
        by_key = {c.key: c for c in vi}
        assert by_key["tls"].status == FAIL and "KHÔNG do CA tin cậy ký" in by_key["tls"].detail
        assert by_key["creds"].status == SKIP  # not misreported as a refused account
        en = await Doctor(wrong, None, lang="en").check_tls()
        assert en.status == FAIL and "NOT signed by the trusted CA" in en.detail

        # Right CA, wrong name (stations dialling a name the certificate does not carry).
        renamed = config.model_copy(update={"mqtt_tls_server_name": "broker.example.vn"})
        check = await Doctor(renamed, None, lang="vi").check_tls()
        assert check.status == FAIL and "không mang tên \u201cbroker.example.vn\u201d" in check.detail
        with pytest.raises(aiomqtt.MqttError, match="Hostname mismatch"):
            async with aiomqtt.Client(renamed.mqtt_host, renamed.mqtt_port, username=renamed.mqtt_username,
                                      password=renamed.mqtt_password, tls_context=agent_context(renamed)):
                pass
        assert station.agent.link.connections == 1  # the real station was never disturbed
    finally:
        await station.stop()


async def _ignore(topic: str, payload: bytes) -> None:
    return None


async def _value(value: str | None) -> str | None:
    return value


def _agent(port: int, **tls_settings: object) -> AgentConfig:
    return AgentConfig(uid="spk-tls-test", controller_url="http://127.0.0.1:9", controller_public_keys=["k"],
                       mqtt_port=port, **tls_settings)  # type: ignore[arg-type]


async def test_doctor_warns_on_expiry_plain_port_and_clear_text_and_mutual_tls(tmp_path: Path) -> None:
    broker = PrivateMosquitto(tmp_path / "broker", port=free_port(), tls_port=free_port(),
                              controller_user="ctl", controller_password="pw", tls_valid=timedelta(days=10),
                              require_client_cert=True)  # fmt: skip
    broker.start()
    try:
        assert broker.tls_port is not None
        assert stat.S_IMODE((broker.tls_dir / "server.key").stat().st_mode) == 0o600
        ca = tls.load(broker.ca_file, broker.tls_dir / "ca.key")
        tls.save(tls.issue(ca, [], client=True, common_name="spk-tls-test"),
                 tmp_path / "client.crt", tmp_path / "client.key")
        mutual = {"mqtt_tls": True, "mqtt_ca_file": broker.ca_file,
                  "mqtt_client_cert_file": tmp_path / "client.crt",
                  "mqtt_client_key_file": tmp_path / "client.key"}
        soon = await Doctor(_agent(broker.tls_port, **mutual), None, lang="vi").check_tls()
        assert soon.status == WARN and "SẮP HẾT HẠN" in soon.detail and "còn 9 ngày" in soon.detail

        no_cert = await Doctor(_agent(broker.tls_port, mqtt_tls=True, mqtt_ca_file=broker.ca_file),
                               None, lang="en").check_tls()  # fmt: skip
        assert no_cert.status == FAIL and "mutual TLS" in no_cert.detail

        plain_port = await Doctor(_agent(broker.port, mqtt_tls=True, mqtt_ca_file=broker.ca_file),
                                  None, lang="en").check_tls()  # fmt: skip
        assert plain_port.status == FAIL and "looks like plain MQTT" in plain_port.detail

        clear = await Doctor(_agent(broker.port), None, lang="vi").check_tls()
        assert clear.status == WARN and "KHÔNG mã hóa" in clear.detail

        # Mutual TLS: without a client certificate the broker hangs up; with one from its CA it accepts.
        with pytest.raises(aiomqtt.MqttError):  # no CONNACK ever comes: a short timeout
            async with aiomqtt.Client("127.0.0.1", broker.tls_port, username="ctl", password="pw", timeout=1,
                                      tls_context=client_context(ca_file=broker.ca_file)):
                pass
        ctx = client_context(ca_file=broker.ca_file, cert_file=tmp_path / "client.crt",
                             key_file=tmp_path / "client.key")
        assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2 and ctx.verify_mode == ssl.CERT_REQUIRED
        async with aiomqtt.Client("127.0.0.1", broker.tls_port, username="ctl", password="pw", timeout=5,
                                  tls_context=ctx) as client:
            await client.publish("cc/v1/tls-test", b"ok", qos=1)
    finally:
        broker.stop()
