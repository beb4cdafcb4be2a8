"""aiomqtt's client with the per-message overheads taken out, for code that runs on one loop.

Why (`communecast bench fanout`, docs/scaling.md): a cProfile of 2,000 simulated stations
answering one emergency showed aiomqtt's plumbing, not the agent, as most of a station's
CPU per message:

- every outgoing packet woke the loop through its self-pipe (`call_soon_threadsafe` for
  `add_writer`: a `send` system call), then waited one loop round for `add_writer`, one for
  epoll to report the socket writable and one more for the write itself;
- every publish walked all pending calls twice and made a task for `asyncio.wait_for`;
- every received message made a task and an `asyncio.wait` around the queue.

When paho asks to write from the event loop's own thread this client writes at once (what
paho itself does without an external loop), and only falls back to the loop's writer when
the socket is full; `publish` waits for its PUBACK on one event; `messages` waits on the
queue itself (a disconnect puts a marker in it). Paho still calls from an executor thread
while connecting: those calls take aiomqtt's thread-safe path unchanged.

`stamp_socket_arrival=True` (the fleet simulator and the benchmarks' bare subscribers) also
notes on each message when its bytes reached this socket, from the kernel's receive timestamp
(SO_TIMESTAMP): in a simulator thousands of stations share two cores, so a message can sit in
its socket's buffer for seconds before its process reads it; a real station reads at once.

Uses aiomqtt internals (`_client`, `_queue`, `_pending_publishes`, `_disconnected`,
`_misc_loop`, `_on_message`, `_on_socket_open`) and paho's `_sock_recv`, pinned by the
`aiomqtt>=2.3,<3` range; `tests/test_mqtt_client.py` runs it
against a real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_mqtt
from aiomqtt.exceptions import MqttCodeError


class _Disconnected:
    """Put in the message queue when the connection ends: wakes a waiting reader."""

    arrived_at = 0.0


_DISCONNECTED = _Disconnected()


# Linux: SO_TIMESTAMP makes recvmsg() return an SCM_TIMESTAMP (same number) with a struct timeval.
SO_TIMESTAMP = 29
_TIMEVAL = struct.Struct("@ll")
_TIMESTAMP_SPACE = socket.CMSG_SPACE(_TIMEVAL.size)


def reached_socket_at(message: aiomqtt.Message) -> float | None:
    """When the message's bytes reached the client's socket (kernel clock, unix seconds), if the
    client was asked to note it (`stamp_socket_arrival`)."""
    return getattr(message, "reached_socket_at", None)


class PublishError(aiomqtt.MqttError):
    """The broker connection refused or lost a publish."""


@dataclass(frozen=True)
class Pending:
    """A QoS 1 publish on its way: `acked` is set when the broker's PUBACK arrives."""

    mid: int
    acked: asyncio.Event


class FastClient(aiomqtt.Client):
    def __init__(self, *args: Any, stamp_socket_arrival: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stamp_socket_arrival = stamp_socket_arrival and sys.platform == "linux"
        self._socket_arrival: float | None = None  # kernel receive time of the last bytes read
        self._loop_thread = threading.get_ident()
        self._keepalive_s = float(kwargs.get("keepalive", 60))
        self._writer_added = True  # until we know better: aiomqtt's own path may have added one

    async def __aenter__(self) -> FastClient:
        await super().__aenter__()
        self._disconnected.add_done_callback(self._wake_reader)
        return self

    def _wake_reader(self, _fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full queue has a reader to wake anyway
            self._queue.put_nowait(_DISCONNECTED)  # type: ignore[arg-type]

    # -- reading: when bytes reached the socket ------------------------------------------
    def _on_socket_open(self, client: paho_mqtt.Client, userdata: Any, sock: Any) -> None:
        super()._on_socket_open(client, userdata, sock)
        if self._stamp_socket_arrival and type(sock) is socket.socket:  # not TLS: no recvmsg there
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
            client._sock_recv = self._recv_stamped  # type: ignore[method-assign]

    def _recv_stamped(self, bufsize: int) -> bytes:
        """paho's `_sock_recv` through recvmsg(), keeping the kernel's receive timestamp."""
        sock = self._client._sock
        if sock is None:
            raise ConnectionError("self._sock is None")
        data, ancillary, _flags, _addr = sock.recvmsg(bufsize, _TIMESTAMP_SPACE)  # type: ignore[union-attr]
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(raw) >= _TIMEVAL.size:
                sec, usec = _TIMEVAL.unpack_from(raw)
                self._socket_arrival = sec + usec / 1e6
        return data

    def _on_message(self, client: paho_mqtt.Client, userdata: Any, message: paho_mqtt.MQTTMessage) -> None:
        if not self._stamp_socket_arrival:
            super()._on_message(client, userdata, message)
            return
        m = aiomqtt.Message._from_paho_message(message)
        m.reached_socket_at = self._socket_arrival  # type: ignore[attr-defined]
        try:
            self._queue.put_nowait(m)
        except asyncio.QueueFull:
            self._logger.warning("Message queue is full. Discarding message.")

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

    def _fail(self, exc: Exception) -> None:
        if not self._disconnected.done():
            self._disconnected.set_exception(exc)

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> Pending:
        """Hand a message to the socket now, without waiting; `Pending.acked` is set at its
        PUBACK (at once for QoS 0). Raises PublishError when the connection refuses it."""
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != paho_mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"could not publish ({paho_mqtt.error_string(info.rc)})") from self._cause()
        pending = Pending(info.mid, asyncio.Event())
        if info.is_published():
            pending.acked.set()
        else:
            self._pending_publishes[info.mid] = pending.acked  # aiomqtt's on_publish sets it
        return pending

    def forget(self, pending: Pending) -> None:
        """Stop tracking a publish_nowait() whose PUBACK will not be awaited any more."""
        if self._pending_publishes.get(pending.mid) is pending.acked:
            del self._pending_publishes[pending.mid]

    async def publish(  # type: ignore[override]
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

    def _cause(self) -> BaseException | None:
        fut = self._disconnected
        return fut.exception() if fut.done() and not fut.cancelled() else None

    # -- reading ---------------------------------------------------------------------
    @property
    def messages(self) -> _Messages:  # type: ignore[override]
        return _Messages(self)

    # -- keepalive -------------------------------------------------------------------
    async def _misc_loop(self) -> None:
        """paho's housekeeping (keepalive pings) every keepalive/10 s, not every second:
        10,000 stations in one simulator woke 10,000 times a second for it."""
        period = min(max(1.0, self._keepalive_s / 10), 15.0)
        while self._client.loop_misc() == paho_mqtt.MQTT_ERR_SUCCESS:  # noqa: ASYNC110
            await asyncio.sleep(period)


class _Messages:
    def __init__(self, client: FastClient) -> None:
        self._client = client

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> aiomqtt.Message:
        client = self._client
        while True:
            if client._disconnected.done() and client._queue.empty():
                raise aiomqtt.MqttError("Disconnected during message iteration") from client._cause()
            message = await client._queue.get()
            if message is not _DISCONNECTED:  # (a marker left by an earlier connection: skipped)
                return message
