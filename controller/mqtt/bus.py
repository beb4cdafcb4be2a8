"""The controller's one MQTT connection: persistent session, reconnect, publish, ingest.

The session is persistent (clean_session=False, fixed client id) so events that stations
send while the controller is down are queued by the broker and arrive after restart.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_mqtt

from protocol import topics

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]
BatchHandler = Callable[[list[tuple[str, bytes]]], None]
PUBLISH_WINDOW = 100
READ_BURST = 2000  # packets read per wake-up before yielding to the rest of the event loop
RECV_CHUNK = 65536


class _BurstReader:
    """Reads every packet the socket holds per wake-up and hands the stations' messages over
    as one list.

    Why (`communecast bench ingest`, docs/scaling.md): aiomqtt reads one MQTT packet per
    event-loop wake-up, paho asks the socket for each packet 1-4 bytes at a time, and every
    message then became an aiomqtt Message in an asyncio.Queue read by `async for`: ~4
    system calls, a loop iteration and three Python hops per message. Here paho reads from a
    64 KB buffer, a wake-up drains the socket, and the batch goes to the handler in one call.
    QoS 1 is unchanged: paho still sends each PUBACK after the handler has the message.
    Uses paho internals (`_packet_read`, `_sock_recv`); `install` returns False and the
    plain aiomqtt path stays in use if they are not there.
    """

    def __init__(self, client: aiomqtt.Client, deliver: BatchHandler) -> None:
        self._aio = client
        self._paho: paho_mqtt.Client = client._client
        self._deliver = deliver
        self._pending: list[tuple[str, bytes]] = []
        self._buf = b""
        self._pos = 0
        self._loop = asyncio.get_running_loop()

    def install(self) -> bool:
        paho = self._paho
        sock = paho.socket()
        needed = ("_packet_read", "_sock_recv", "_loop_rc_handle", "_out_packet", "_registered_write")
        if sock is None or not all(hasattr(paho, a) for a in needed):
            return False
        self._raw_recv = paho._sock_recv
        paho._sock_recv = self._recv  # type: ignore[method-assign]
        paho.on_message = self._on_message
        self._loop.add_reader(sock.fileno(), self._on_readable)  # replaces aiomqtt's reader
        # aiomqtt adds the writer later (call_soon_threadsafe) but removes it at once: after a
        # direct loop_write (`_flush_acks`) that order left a writer paho thought was gone, and
        # the loop spun calling it. Everything runs on the loop from here, so add it at once.
        paho.on_socket_register_write = self._register_write
        if paho._registered_write:
            self._loop.add_writer(sock.fileno(), self._on_writable)
        return True

    def _register_write(self, _c: object, _u: object, sock: Any) -> None:
        self._loop.add_writer(sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        try:
            self._paho.loop_write()
        except Exception as exc:  # as aiomqtt's writer: a broken connection
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        disconnected = self._aio._disconnected
        if not disconnected.done():
            disconnected.set_exception(exc)

    def _recv(self, n: int) -> bytes:
        if self._pos >= len(self._buf):
            data = self._raw_recv(RECV_CHUNK)  # BlockingIOError when empty: paho handles it
            if len(data) <= n:
                return data
            self._buf, self._pos = data, 0
        end = self._pos + n
        out = self._buf[self._pos:end]
        self._pos = end
        return out

    def _on_message(self, _c: object, _u: object, message: paho_mqtt.MQTTMessage) -> None:
        self._pending.append((message.topic, message.payload))

    def _on_readable(self) -> None:
        paho = self._paho
        try:
            for _ in range(READ_BURST):
                if paho._sock is None:
                    break
                rc = paho._packet_read()
                if rc == paho_mqtt.MQTT_ERR_AGAIN:
                    break
                if rc > 0:
                    paho._loop_rc_handle(rc)  # closes, calls on_disconnect
                    break
            else:
                self._loop.call_soon(self._on_readable)  # more may wait in our buffer
        except Exception as exc:  # as aiomqtt's reader: a broken connection
            self._fail(exc)
        finally:
            if self._pending:
                batch, self._pending = self._pending, []
                self._deliver(batch)
            self._flush_acks()

    def _flush_acks(self) -> None:
        """Send this burst's PUBACKs now, in one write, not one per message on the next
        loop iteration: the broker keeps only a few unacknowledged messages in flight per
        client (Mosquitto: max_inflight_messages, 20 by default), so ack latency caps the
        rate it sends at."""
        paho = self._paho
        out = paho._out_packet
        if paho._sock is None or not out:
            return
        merged: deque[dict[str, Any]] = deque()
        acks: list[bytes] = []
        for pkt in out:
            if pkt["command"] & 0xF0 == paho_mqtt.PUBACK and pkt["pos"] == 0:
                acks.append(pkt["packet"])
                continue
            if acks:
                merged.append(_acks_packet(acks))
                acks = []
            merged.append(pkt)
        if acks:
            merged.append(_acks_packet(acks))
        out.clear()
        out.extend(merged)
        self._on_writable()  # what remains (socket full) goes when it is writable again


def _acks_packet(acks: list[bytes]) -> dict[str, Any]:
    """Consecutive PUBACKs as one queued paho packet (nothing is called back for a PUBACK)."""
    data = b"".join(acks)
    return {"command": paho_mqtt.PUBACK, "mid": 0, "qos": 0, "pos": 0, "to_process": len(data),
            "packet": data, "info": None}


def _wake_publishers(client: aiomqtt.Client) -> None:
    """The connection is gone: no PUBACK will come, so every waiting publish wakes and fails."""
    for acked in client._pending_publishes.values():
        acked.set()


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
        self._batches: asyncio.Queue[list[tuple[str, bytes]]] = asyncio.Queue()
        self._tls_context = tls_context  # None: plain MQTT (controller.mqtt.tls)
        if share_group:
            if not share_group.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"share group must be letters, digits, - or _: {share_group!r}")
            subscriptions = tuple(f"$share/{share_group}/{t}" for t in subscriptions)
        self._subscriptions = subscriptions
        self._client: aiomqtt.Client | None = None
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

    async def _run(self) -> None:
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
                    tls_context=self._tls_context,
                ) as client:
                    client.pending_calls_threshold = PUBLISH_WINDOW * 2  # no warning per publish
                    self._client = client
                    for topic in self._subscriptions:
                        granted = await client.subscribe(topic, qos=1)
                        if any(getattr(rc, "value", rc) >= 0x80 for rc in granted or ()):
                            log.error("broker refused the subscription %s (ACL?): %s", topic, granted)
                    if not _BurstReader(client, self._deliver).install():
                        log.warning("paho internals changed: reading MQTT one packet per wake-up")
                    client._disconnected.add_done_callback(lambda _f, c=client: _wake_publishers(c))
                    self.connected.set()
                    backoff = 0.2
                    log.info("MQTT connected to %s:%s", self._host, self._port)
                    # Only what arrived before the burst reader took over comes this way; the
                    # loop also ends (MqttError) when the connection drops.
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes | bytearray):
                            payload = str(payload).encode()
                        self._deliver([(message.topic.value, bytes(payload))])
            except aiomqtt.MqttError as exc:
                if self._stopping:
                    break
                log.warning("MQTT connection lost (%s); retrying in %.1fs", exc, backoff)
            finally:
                self.connected.clear()
                self._client = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _deliver(self, batch: list[tuple[str, bytes]]) -> None:
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
            for topic, payload in await self._batches.get():
                try:
                    await self._on_message(topic, payload)
                except Exception:
                    log.exception("failed to handle message on %s", topic)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Returns once the broker has it (its PUBACK for QoS 1); ConnectionError when it
        refused, lost or did not answer it within the client's timeout.

        Straight through paho and aiomqtt's PUBACK events, without aiomqtt's `publish`: its
        wait_for made a task per message, ~0.25 ms each, a third of publishing 10,000
        desired states (`communecast bench horizon`, phase c)."""
        async with self._in_flight:
            client = self._client
            if client is None or not self.connected.is_set():
                raise ConnectionError("MQTT broker not connected")
            info = client._client.publish(topic, payload, qos, retain)
            if info.rc != paho_mqtt.MQTT_ERR_SUCCESS:
                raise ConnectionError(f"MQTT publish refused: {paho_mqtt.error_string(info.rc)}")
            if qos == 0 or info.is_published():
                return
            acked = asyncio.Event()
            client._pending_publishes[info.mid] = acked  # aiomqtt's on_publish sets it at the PUBACK
            try:
                async with asyncio.timeout(client.timeout):
                    await acked.wait()  # also set when the connection drops (_wake_publishers)
            except TimeoutError:
                raise ConnectionError(f"no PUBACK from the broker within {client.timeout} s") from None
            finally:
                if client._pending_publishes.get(info.mid) is acked:
                    del client._pending_publishes[info.mid]
            if not info.is_published():
                raise ConnectionError("MQTT connection lost before the broker's PUBACK")

    def stop(self) -> None:
        self._stopping = True
