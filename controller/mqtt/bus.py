"""The controller's one MQTT connection: persistent session, reconnect, publish, ingest.

The session is persistent (clean_session=False, fixed client id) so events that stations
send while the controller is down are queued by the broker and arrive after restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiomqtt

from protocol import topics

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]


class MqttBus:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        username: str | None,
        password: str | None,
        on_message: Handler,
        subscriptions: tuple[str, ...] = topics.CONTROLLER_SUBSCRIPTIONS,
        share_group: str | None = None,
    ) -> None:
        """`share_group`: subscribe as `$share/<group>/<filter>` so that replicas in the
        same group split the stations' messages (one replica gets each message)."""
        self._host, self._port = host, port
        self._client_id = client_id
        self._username, self._password = username, password
        self._on_message = on_message
        if share_group:
            if not share_group.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"share group must be letters, digits, - or _: {share_group!r}")
            subscriptions = tuple(f"$share/{share_group}/{t}" for t in subscriptions)
        self._subscriptions = subscriptions
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._stopping = False

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    identifier=self._client_id,
                    username=self._username,
                    password=self._password,
                    clean_session=False,
                    keepalive=30,
                    max_inflight_messages=1000,
                    max_queued_outgoing_messages=0,
                ) as client:
                    self._client = client
                    for topic in self._subscriptions:
                        granted = await client.subscribe(topic, qos=1)
                        if any(getattr(rc, "value", rc) >= 0x80 for rc in granted or ()):
                            log.error("broker refused the subscription %s (ACL?): %s", topic, granted)
                    self.connected.set()
                    backoff = 0.2
                    log.info("MQTT connected to %s:%s", self._host, self._port)
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes | bytearray):
                            payload = str(payload).encode()
                        try:
                            await self._on_message(message.topic.value, bytes(payload))
                        except Exception:
                            log.exception("failed to handle message on %s", message.topic)
            except aiomqtt.MqttError as exc:
                if self._stopping:
                    break
                log.warning("MQTT connection lost (%s); retrying in %.1fs", exc, backoff)
            finally:
                self.connected.clear()
                self._client = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        client = self._client
        if client is None or not self.connected.is_set():
            raise ConnectionError("MQTT broker not connected")
        await client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self) -> None:
        self._stopping = True
