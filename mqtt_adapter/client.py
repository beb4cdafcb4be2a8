"""THE one file where the project deviates from aiomqtt and paho, and why each deviation exists.

Checked against aiomqtt 2.5.1 and paho-mqtt 2.2.0 (the `aiomqtt>=2.3,<3` pin of pyproject.toml
brings paho 2.x); `tests/test_mqtt_adapter.py`, `tests/test_mqtt_client.py` and
`tests/test_bus_burst.py` run every deviation against a real Mosquitto. Nothing outside this
file touches a private member of either library: a library upgrade is checked here.

Three clients, all aiomqtt `Client`s (connect, subscribe, TLS, Last Will unchanged):

`AdapterClient` (what both sides share)
- received messages are the adapter's own frozen `Message` (topic, payload, qos, retain,
  `arrived_at`, `reached_socket_at` as fields) in the client's own queue: aiomqtt's
  `_on_message` is replaced, so no attribute is ever added to a library object;
- `publish_nowait` hands a message to paho at once and returns a `Pending` whose `acked`
  event aiomqtt's own PUBACK callback sets (its `_pending_publishes`): no task and no
  `asyncio.wait_for` per message, which cost a third of publishing 10,000 desired states
  (`communecast bench horizon`, phase c);
- when the connection ends, every `Pending` still waiting wakes (`published` is then False)
  and a reader waiting in `messages` wakes and raises `MqttError` (aiomqtt's `_disconnected`
  future): a lost broker fails a publish at once instead of after the client's timeout, and
  never hangs a message loop.

`StationClient` (agents, the fleet simulator, the benchmarks' bare subscribers). A cProfile of
2,000 simulated stations answering one emergency (`communecast bench fanout`,
docs/scaling.md) showed aiomqtt's plumbing, not the agent, as most of a station's CPU:
- every outgoing packet woke the loop through its self-pipe (`call_soon_threadsafe` for
  `add_writer`: a `send` system call), then waited one loop round for `add_writer`, one for
  epoll to report the socket writable and one more for the write itself. When paho asks to
  write from the event loop's own thread this client writes at once (what paho itself does
  without an external loop) and only falls back to the loop's writer when the socket is full;
  paho still calls from an executor thread while connecting: those calls take aiomqtt's
  thread-safe path unchanged (`_on_socket_register_write` / `_unregister_write`);
- paho's housekeeping (keepalive pings) runs every keepalive/10 s, not every second: 10,000
  stations in one simulator woke 10,000 times a second for it (`_misc_loop`);
- `stamp_socket_arrival=True` also notes when each message's bytes reached the socket, from
  the kernel's receive timestamp (SO_TIMESTAMP, through paho's `_sock_recv`): in a simulator
  thousands of stations share two cores, so a message can sit in its socket's buffer for
  seconds before its process reads it; a real station reads at once.

`ControllerClient` (the controller's bus): `read_in_bursts` reads every packet the socket holds
per wake-up and hands the messages over as one list. aiomqtt reads one MQTT packet per
event-loop wake-up, paho asks the socket for each packet 1-4 bytes at a time, and every
message then went through an asyncio.Queue read by `async for`: ~4 system calls, a loop
iteration and three Python hops per message (`communecast bench ingest`). Here paho reads from
a 64 KB buffer (`_sock_recv`), a wake-up drains the socket (`_packet_read`, `_loop_rc_handle`)
and the burst's PUBACKs go out in one write (`_out_packet`). QoS 1 is unchanged: paho still
sends each PUBACK after the handler has the message. If those paho members are missing,
`read_in_bursts` returns False and the plain path stays in use. With no per-topic callbacks
registered, messages skip paho's topic matcher (`_handle_on_message`: the topic split and
walked for each message, ~7 % of the CPU at 6,000 events/s). `send_qos0` encodes a batch of
QoS 0 messages (event receipts) and queues them as one write (`_out_packet`), without paho's
`publish` and its MQTTMessageInfo per message.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_mqtt
from aiomqtt.exceptions import MqttCodeError

from mqtt_adapter import packets
from mqtt_adapter.message import Message

BatchHandler = Callable[[list[Message]], None]
READ_BURST = 2000  # packets read per wake-up before yielding to the rest of the event loop
RECV_CHUNK = 65536

# Linux: SO_TIMESTAMP makes recvmsg() return an SCM_TIMESTAMP (same number) with a struct timeval.
SO_TIMESTAMP = 29
_TIMEVAL = struct.Struct("@ll")
_TIMESTAMP_SPACE = socket.CMSG_SPACE(_TIMEVAL.size)


class PublishError(aiomqtt.MqttError):
    """The broker connection refused or lost a publish."""


class _Ack(asyncio.Event):
    """The PUBACK event of a `publish_nowait`: only these are woken when the connection ends
    (aiomqtt's own `publish` keeps its own events and its own timeout)."""


@dataclass(frozen=True)
class Pending:
    """A publish on its way: `acked` is set at the broker's PUBACK (at once for QoS 0 already
    written), or when the connection ends; `published` tells the two apart."""

    mid: int
    acked: asyncio.Event
    info: paho_mqtt.MQTTMessageInfo

    @property
    def published(self) -> bool:
        return self.info.is_published()


class AdapterClient(aiomqtt.Client):
    """aiomqtt's client delivering the adapter's `Message`, with `publish_nowait`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._incoming: asyncio.Queue[Message | None] = asyncio.Queue()  # None: the connection ended
        self._socket_arrival: float | None = None  # kernel receive time of the last bytes read, if noted

    async def __aenter__(self) -> AdapterClient:
        await super().__aenter__()
        self._disconnected.add_done_callback(self._connection_gone)
        return self

    def _connection_gone(self, _fut: asyncio.Future[None]) -> None:
        """No PUBACK will come and nothing more will be read: wake whoever waits for either."""
        self._incoming.put_nowait(None)
        for acked in self._pending_publishes.values():
            if isinstance(acked, _Ack):
                acked.set()

    def socket(self) -> socket.socket | None:
        """The connection's socket (None while not connected), e.g. to wait until it is readable."""
        sock = self._client.socket()
        return sock if isinstance(sock, socket.socket) else None

    def _fail(self, exc: BaseException) -> None:
        """A read or write of ours broke the connection: end it as aiomqtt's own reader would."""
        if not self._disconnected.done():
            self._disconnected.set_exception(exc)

    def _cause(self) -> BaseException | None:
        fut = self._disconnected
        return fut.exception() if fut.done() and not fut.cancelled() else None

    # -- reading ---------------------------------------------------------------------
    def _on_message(self, client: paho_mqtt.Client, userdata: Any, message: paho_mqtt.MQTTMessage) -> None:
        self._incoming.put_nowait(Message(message.topic, message.payload, message.qos, bool(message.retain),
                                          time.time(), self._socket_arrival))

    @property
    def messages(self) -> _Messages:  # type: ignore[override]  # the adapter's Message, not aiomqtt's
        return _Messages(self)

    async def next_message(self) -> Message:
        """The next received message; MqttError once the connection has ended and all are read."""
        while True:
            if self._disconnected.done() and self._incoming.empty():
                raise aiomqtt.MqttError("Disconnected during message iteration") from self._cause()
            message = await self._incoming.get()
            if message is not None:  # (a marker left by an earlier end: skipped)
                return message

    # -- writing ---------------------------------------------------------------------
    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> Pending:
        """Hand a message to the socket now, without waiting; see `Pending`. Raises
        PublishError when the connection refuses it."""
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != paho_mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"could not publish ({paho_mqtt.error_string(info.rc)})") from self._cause()
        pending = Pending(info.mid, _Ack(), info)
        if info.is_published():
            pending.acked.set()
        else:
            self._pending_publishes[info.mid] = pending.acked  # aiomqtt's on_publish sets it
        return pending

    def forget(self, pending: Pending) -> None:
        """Stop tracking a publish_nowait() whose PUBACK will not be awaited any more."""
        if self._pending_publishes.get(pending.mid) is pending.acked:
            del self._pending_publishes[pending.mid]

    async def publish(  # type: ignore[override]  # same call, plus keyword-only timeout
        self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False,
        properties: Any = None, *args: Any, timeout: float | None = None, **kwargs: Any,
    ) -> None:
        if properties is not None or args or kwargs or self._outgoing_calls_sem is not None:
            await super().publish(topic, payload, qos, retain, properties, *args, timeout=timeout, **kwargs)
            return
        try:
            pending = self.publish_nowait(topic, payload, qos=qos, retain=retain)
        except PublishError as exc:
            raise MqttCodeError(paho_mqtt.MQTT_ERR_NO_CONN, str(exc)) from exc.__cause__
        limit = self.timeout if timeout is None else timeout
        try:
            if limit == math.inf:
                await pending.acked.wait()
            else:
                async with asyncio.timeout(limit):
                    await pending.acked.wait()
        except TimeoutError:
            raise aiomqtt.MqttError("Operation timed out") from None
        finally:
            self.forget(pending)
        if not pending.published:
            raise aiomqtt.MqttError("Disconnected before the broker's PUBACK") from self._cause()


class _Messages:
    """`async for message in client.messages` over the adapter's queue."""

    def __init__(self, client: AdapterClient) -> None:
        self._client = client

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> Message:
        return await self._client.next_message()


class StationClient(AdapterClient):
    """The agents' client: direct writes, sparse housekeeping, optional socket-arrival stamps."""

    def __init__(self, *args: Any, stamp_socket_arrival: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stamp_socket_arrival = stamp_socket_arrival and sys.platform == "linux"
        self._loop_thread = threading.get_ident()
        self._keepalive_s = float(kwargs.get("keepalive", 60))
        self._writer_added = True  # until we know better: aiomqtt's own path may have added one

    # -- reading: when bytes reached the socket ------------------------------------------
    def _on_socket_open(self, client: paho_mqtt.Client, userdata: Any, sock: Any) -> None:
        super()._on_socket_open(client, userdata, sock)
        if self._stamp_socket_arrival and type(sock) is socket.socket:  # not TLS: no recvmsg there
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
            client._sock_recv = self._recv_stamped  # type: ignore[method-assign]  # paho has no hook

    def _recv_stamped(self, bufsize: int) -> bytes:
        """paho's `_sock_recv` through recvmsg(), keeping the kernel's receive timestamp."""
        sock = self._client.socket()
        if not isinstance(sock, socket.socket):
            raise ConnectionError("self._sock is None")
        data, ancillary, _flags, _addr = sock.recvmsg(bufsize, _TIMESTAMP_SPACE)
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(raw) >= _TIMEVAL.size:
                sec, usec = _TIMEVAL.unpack_from(raw)
                self._socket_arrival = sec + usec / 1e6
        return data

    # -- writing ---------------------------------------------------------------------
    def _on_socket_register_write(self, client: paho_mqtt.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() != self._loop_thread:
            self._writer_added = True
            super()._on_socket_register_write(client, userdata, sock)  # connect(): executor thread
            return
        if client._in_callback_mutex.acquire(False):  # not inside a paho callback (as paho checks)
            client._in_callback_mutex.release()
            try:
                client.loop_write()  # unregisters itself when everything went out
            except Exception as exc:  # as aiomqtt's writer: a broken connection
                self._fail(exc)
                return
            if not client._registered_write:
                return
        self._writer_added = True
        self._loop.add_writer(sock.fileno(), self._on_writable, client)

    def _on_socket_unregister_write(self, client: paho_mqtt.Client, userdata: Any, sock: Any) -> None:
        # Most writes went out directly and never had a writer to remove (asyncio's check of
        # the descriptor on every remove is measurable at thousands of stations).
        if self._writer_added or threading.get_ident() != self._loop_thread:
            self._writer_added = False
            super()._on_socket_unregister_write(client, userdata, sock)

    def _on_writable(self, client: paho_mqtt.Client) -> None:
        try:
            client.loop_write()
        except Exception as exc:
            self._fail(exc)

    # -- keepalive -------------------------------------------------------------------
    async def _misc_loop(self) -> None:
        """paho's housekeeping (keepalive pings) every keepalive/10 s, not every second."""
        period = min(max(1.0, self._keepalive_s / 10), 15.0)
        while self._client.loop_misc() == paho_mqtt.MQTT_ERR_SUCCESS:  # noqa: ASYNC110
            await asyncio.sleep(period)


class ControllerClient(AdapterClient):
    """The controller's client: after `read_in_bursts`, every socket wake-up's messages in one call."""

    _burst: _BurstReader | None = None

    def read_in_bursts(self, deliver: BatchHandler) -> bool:
        """From now on hand every message to `deliver` (synchronous, on the event loop), one
        list per socket wake-up. False (and nothing changed) when paho lacks what it needs."""
        burst = _BurstReader(self._client, deliver, fail=self._fail)
        if not burst.install():
            return False
        self._burst = burst
        return True

    def send_qos0(self, messages: list[tuple[str, bytes]]) -> None:
        """QoS 0 messages handed to the socket now, encoded together and written in one call
        once `read_in_bursts` is on; raises PublishError when not connected. A receipt per
        station per ingest batch went through paho's `publish` (a MQTTMessageInfo, a
        Condition and a write each): ~10 % of the controller's CPU at 6,000 events/s from
        100 stations, and one receipt per event from a fleet of 10,000."""
        if self._burst is None:
            for topic, payload in messages:
                self.publish_nowait(topic, payload, qos=0)
            return
        self._burst.write_qos0(messages)


class _BurstReader:
    """ControllerClient.read_in_bursts: paho driven from a 64 KB buffer, a burst per wake-up."""

    def __init__(
        self, paho: paho_mqtt.Client, deliver: BatchHandler, *, fail: Callable[[BaseException], None]
    ) -> None:
        self._paho = paho
        self._fail = fail  # ends the connection, as aiomqtt's own reader and writer do
        self._deliver = deliver
        self._pending: list[Message] = []
        self._now = 0.0  # when the current burst was read (every message of it arrived then)
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
        paho._sock_recv = self._recv  # type: ignore[method-assign]  # paho has no read-buffer hook
        paho.on_message = self._on_message
        matcher = getattr(getattr(paho, "_on_message_filtered", None), "_root", None)
        if hasattr(paho, "_handle_on_message") and getattr(matcher, "_children", True) == {}:
            # No per-topic callbacks: skip paho's topic matcher, split and walked for every
            # message (~7 % of the controller's CPU in `communecast bench ingest`).
            paho._handle_on_message = self._handle_on_message  # type: ignore[method-assign]
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
        self._pending.append(Message(message.topic, message.payload, message.qos, bool(message.retain),
                                     self._now))

    def _handle_on_message(self, message: paho_mqtt.MQTTMessage) -> None:
        self._on_message(None, None, message)

    def write_qos0(self, messages: list[tuple[str, bytes]]) -> None:
        paho = self._paho
        if paho._sock is None:
            raise PublishError("could not publish (not connected)")
        v5 = paho._protocol == paho_mqtt.MQTTv5
        data = b"".join(_qos0_publish(topic, payload, v5) for topic, payload in messages)
        if data:
            paho._out_packet.append(_raw_packet(data))
            self._on_writable()  # what the socket does not take now goes when it is writable

    def _on_readable(self) -> None:
        paho = self._paho
        self._now = time.time()
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
                merged.append(_raw_packet(b"".join(acks)))
                acks = []
            merged.append(pkt)
        if acks:
            merged.append(_raw_packet(b"".join(acks)))
        out.clear()
        out.extend(merged)
        self._on_writable()  # what remains (socket full) goes when it is writable again


def _raw_packet(data: bytes) -> dict[str, Any]:
    """Already encoded MQTT packets as one queued paho packet. Labelled PUBACK because paho
    calls nothing back once a PUBACK is written (a QoS 0 PUBLISH label would have it call
    on_publish and mark a MQTTMessageInfo it does not have)."""
    return {"command": paho_mqtt.PUBACK, "mid": 0, "qos": 0, "pos": 0, "to_process": len(data),
            "packet": data, "info": None}


def _qos0_publish(topic: str, payload: bytes, v5: bool) -> bytes:
    """One QoS 0 PUBLISH packet (MQTT 3.1.1 section 3.3; v5 adds an empty property list)."""
    return packets.packet(paho_mqtt.PUBLISH, packets.utf8(topic) + (b"\x00" if v5 else b"") + payload)
