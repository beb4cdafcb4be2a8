"""The controller's one MQTT connection: persistent session, reconnect, publish, ingest.

The session is persistent (clean_session=False, fixed client id) so events that stations
send while the controller is down are queued by the broker and arrive after restart.
The connection is `mqtt_adapter.ControllerClient`: stations' messages arrive as lists of
`mqtt_adapter.Message`, one per socket wake-up (why: mqtt_adapter/client.py).

An open socket is no proof that the broker works: a frozen broker (SIGSTOP, a stuck disk)
keeps the TCP connection up and answers nothing until the keepalive gives up, half a minute
later. So while connected the bus publishes a QoS 1 probe every PROBE_PERIOD_S and notes when
the broker's PUBACK came back; `answering()` is what /healthz reports. Reconnects wait a
full-jitter backoff (mqtt_adapter/backoff.py), as the stations do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable

import aiomqtt

from mqtt_adapter import Backoff, BatchHandler, ControllerClient, Message, Pending, PublishError
from protocol import topics

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]
PUBLISH_WINDOW = 100
PROBE_PERIOD_S = 1.0  # a round trip to the broker this often while connected
PROBE_TIMEOUT_S = 2.0  # a PUBACK later than this does not count
ANSWER_WINDOW_S = 3.5  # the broker answers if its last PUBACK is at most this old


class MqttBus:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        username: str | None,
        password: str | None,
        on_message: Handler | None = None,
        on_batch: BatchHandler | None = None,
        subscriptions: tuple[str, ...] = topics.CONTROLLER_SUBSCRIPTIONS,
        share_group: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """`share_group`: subscribe as `$share/<group>/<filter>` so that replicas in the
        same group split the stations' messages (one replica gets each message).
        `on_batch` (synchronous, called on the event loop with every message one socket
        wake-up read) is the fast path the ingest uses; `on_message` is awaited per message."""
        if (on_message is None) == (on_batch is None):
            raise ValueError("give exactly one of on_message and on_batch")
        self._host, self._port = host, port
        self._client_id = client_id
        self._username, self._password = username, password
        self._on_message = on_message
        self._on_batch = on_batch
        self._batches: asyncio.Queue[list[Message]] = asyncio.Queue()
        self._tls_context = tls_context  # None: plain MQTT (controller.mqtt.tls)
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=10.0)
        self._probe_topic = topics.controller_probe(client_id)
        self.last_answer: float | None = None  # monotonic time of the probe's latest PUBACK
        self.round_trip_ms: float | None = None  # how long that PUBACK took
        if share_group:
            if not share_group.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"share group must be letters, digits, - or _: {share_group!r}")
            subscriptions = tuple(f"$share/{share_group}/{t}" for t in subscriptions)
        self._subscriptions = subscriptions
        self._client: ControllerClient | None = None
        self.connected = asyncio.Event()
        # At most this many QoS 1 publishes awaiting PUBACK: aiomqtt's bookkeeping costs
        # O(in flight) per publish, so 500 at once is slower than 100 kept busy (bench horizon).
        self._in_flight = asyncio.Semaphore(PUBLISH_WINDOW)
        self._stopping = False

    async def run(self) -> None:
        handler = asyncio.create_task(self._run_handler()) if self._on_batch is None else None
        try:
            await self._run()
        finally:
            if handler is not None:
                handler.cancel()

    def answering(self, now: float | None = None) -> bool:
        """Connected, and the broker acknowledged a probe within the last ANSWER_WINDOW_S."""
        now = time.monotonic() if now is None else now
        return (self.connected.is_set() and self.last_answer is not None
                and now - self.last_answer <= ANSWER_WINDOW_S)  # fmt: skip

    async def _probe(self) -> None:
        """Round trips while connected (see the module docstring); ends with the connection."""
        while self.connected.is_set():
            sent = time.monotonic()
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await self._publish_now(self._probe_topic, b"", qos=1, retain=False)
            except (TimeoutError, ConnectionError) as exc:
                log.warning("the broker did not acknowledge a probe within %.1f s: %s", PROBE_TIMEOUT_S, exc)
            else:
                self.last_answer = time.monotonic()
                self.round_trip_ms = (self.last_answer - sent) * 1000
            await asyncio.sleep(max(0.0, PROBE_PERIOD_S - (time.monotonic() - sent)))

    async def _run(self) -> None:
        while not self._stopping:
            probe: asyncio.Task[None] | None = None
            try:
                async with ControllerClient(
                    self._host,
                    self._port,
                    identifier=self._client_id,
                    username=self._username,
                    password=self._password,
                    clean_session=False,
                    keepalive=30,
                    max_inflight_messages=1000,
                    max_queued_outgoing_messages=0,
                    tls_context=self._tls_context,
                ) as client:
                    client.pending_calls_threshold = PUBLISH_WINDOW * 2  # no warning per publish
                    self._client = client
                    for topic in self._subscriptions:
                        granted = await client.subscribe(topic, qos=1)
                        if any(getattr(rc, "value", rc) >= 0x80 for rc in granted or ()):
                            log.error("broker refused the subscription %s (ACL?): %s", topic, granted)
                    if not client.read_in_bursts(self._deliver):
                        log.warning("paho internals changed: reading MQTT one packet per wake-up")
                    self.connected.set()
                    self._backoff.reset()
                    probe = asyncio.create_task(self._probe(), name="mqtt-probe")
                    log.info("MQTT connected to %s:%s", self._host, self._port)
                    # Only what arrived before the burst reader took over comes this way; the
                    # loop also ends (MqttError) when the connection drops.
                    async for message in client.messages:
                        self._deliver([message])
            except aiomqtt.MqttError as exc:
                if self._stopping:
                    break
                delay = self._backoff.next_delay()
                log.warning("MQTT connection lost (%s); retrying in %.1fs", exc, delay)
            else:
                delay = self._backoff.next_delay()
            finally:
                self.connected.clear()
                self._client = None
                if probe is not None:
                    probe.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await probe
            await asyncio.sleep(delay)

    def _deliver(self, batch: list[Message]) -> None:
        if self._on_batch is not None:
            try:
                self._on_batch(batch)
            except Exception:
                log.exception("failed to handle %d messages", len(batch))
        else:
            self._batches.put_nowait(batch)

    async def _run_handler(self) -> None:
        """Awaits `on_message` per message, in order, for buses built without `on_batch`."""
        assert self._on_message is not None
        while True:
            for message in await self._batches.get():
                try:
                    await self._on_message(message.topic, message.payload)
                except Exception:
                    log.exception("failed to handle message on %s", message.topic)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Returns once the broker has it (its PUBACK for QoS 1); ConnectionError when it
        refused, lost or did not answer it within the client's timeout. At most
        PUBLISH_WINDOW publishes wait for their PUBACK at once."""
        async with self._in_flight:
            await self._publish_now(topic, payload, qos=qos, retain=retain)

    def hand_over(self, messages: list[tuple[str, bytes]]) -> Awaitable[None]:
        """QoS 1 publishes handed to the socket now, in this loop turn; returns what to await for
        their PUBACKs (ConnectionError when one is refused, lost or later than the client's
        timeout). Raises ConnectionError at once when the broker is not connected. Lets an
        emergency answer its operator as soon as its PLAYs are on their way (docs/emergency.md)."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise ConnectionError("MQTT broker not connected")
        pendings: list[Pending] = []
        for topic, payload in messages:
            try:
                pendings.append(client.publish_nowait(topic, payload, qos=1))
            except PublishError as exc:
                for p in pendings:
                    client.forget(p)
                raise ConnectionError(f"MQTT publish refused: {exc}") from None
        return self._all_acked(client, pendings)

    @staticmethod
    async def _all_acked(client: ControllerClient, pendings: list[Pending]) -> None:
        try:
            async with asyncio.timeout(client.timeout):
                for pending in pendings:
                    await pending.acked.wait()  # also set when the connection drops
        except TimeoutError:
            raise ConnectionError(f"no PUBACK from the broker within {client.timeout} s") from None
        finally:
            for pending in pendings:
                client.forget(pending)
        if not all(p.published for p in pendings):
            raise ConnectionError("MQTT connection lost before the broker's PUBACK")

    def send_now(self, messages: list[tuple[str, bytes]]) -> bool:
        """QoS 0, handed to the socket at once in one write, without waiting: for messages
        whose loss only costs a resend (event receipts). False when not connected."""
        client = self._client
        if client is None or not self.connected.is_set():
            return False
        try:
            client.send_qos0(messages)
        except PublishError:
            return False
        return True

    async def _publish_now(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        """One publish, outside the window: the health probe uses it directly, so that a burst
        of 10,000 desired states queued in the window does not make a working broker look
        dead (the probe's PUBACK still comes after what the broker is busy with).

        Through `publish_nowait`, without aiomqtt's `publish`: its wait_for made a task per
        message, ~0.25 ms each, a third of publishing 10,000 desired states
        (`communecast bench horizon`, phase c)."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise ConnectionError("MQTT broker not connected")
        try:
            pending = client.publish_nowait(topic, payload, qos=qos, retain=retain)
        except PublishError as exc:
            raise ConnectionError(f"MQTT publish refused: {exc}") from None
        if qos == 0 or pending.acked.is_set():
            return
        try:
            async with asyncio.timeout(client.timeout):
                await pending.acked.wait()  # also set when the connection drops
        except TimeoutError:
            raise ConnectionError(f"no PUBACK from the broker within {client.timeout} s") from None
        finally:
            client.forget(pending)
        if not pending.published:
            raise ConnectionError("MQTT connection lost before the broker's PUBACK")

    def stop(self) -> None:
        self._stopping = True
