"""The agent's MQTT link: own credentials, birth + Last Will, subscriptions, outbox.

It reconnects forever with backoff. Events never go straight to the broker: they are
in the store's outbox first, and an entry is deleted only when the controller's receipt
(cc/v1/dev/{uid}/rcpt) says it is stored. The broker's PUBACK is one hop, not the end: a
broker killed before it forwarded the event, or a controller killed after its PUBACK but
before its commit, lost proofs of play that way (`communecast bench chaos`). Events the
broker acknowledged and no receipt named within `receipt_wait_s` are sent again, with a
growing, jittered wait while none comes (the controller is down), and the controller stores
each event id once. So an outage or a crash delays proof of play but never loses it. An
event is handed to the socket
in the same event-loop step that stored it (`wake_outbox`), not a few loop rounds later by
a woken task: a simulator running thousands of stations in one loop measured each such
round as seconds (docs/scaling.md). The connection is `mqtt_adapter.StationClient`; each
message it delivers carries when it came off the socket (`Message.arrived_at`).

With a TLS context (device_agents.common.tls: TLS 1.2+, chain and host name verified) the
password and every message are encrypted on the 4G link; without one it warns loudly when
the broker is not on this machine, because then they cross the network in clear.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable

import aiomqtt
from pydantic import ValidationError

from device_agents.common.store import AgentStore, OutboxEntry
from mqtt_adapter import Backoff, Pending, PublishError, StationClient
from protocol.messages import Receipt

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], Awaitable[None]]
OUTBOX_WINDOW = 20  # events on the wire awaiting their PUBACK (paho's own in-flight limit)
RECEIPT_WAIT_GROWTH = 2.0  # each send again without a receipt waits this much longer, up to the cap


class AgentLink:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        username: str | None,
        password: str | None,
        keepalive: int,
        subscriptions: list[str],
        state_topic: str,
        birth: Callable[[], bytes],
        last_will: bytes,
        store: AgentStore,
        on_message: MessageHandler,
        tls: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
        receipt_topic: str | None = None,
        receipt_wait_s: float = 15.0,
        receipt_wait_cap_s: float = 600.0,
    ) -> None:
        """`receipt_topic`: where the controller names the stored events (subscribed here, never
        passed to `on_message`); without it events are forgotten at the broker's PUBACK."""
        self._host, self._port = host, port
        self._client_id = client_id
        self._username, self._password = username, password
        self._keepalive = keepalive
        self._subscriptions = [*subscriptions, *([receipt_topic] if receipt_topic else [])]
        self._receipt_topic = receipt_topic
        self._receipt_base_s = receipt_wait_s
        self._receipt_cap_s = max(receipt_wait_cap_s, receipt_wait_s)
        self._receipt_wait_s = receipt_wait_s  # grows while no receipt comes, back to base at one
        self._state_topic = state_topic
        self._birth = birth
        self._last_will = last_will
        self._store = store
        self._on_message = on_message
        self._tls = tls
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=30.0)
        self.last_error: str | None = None  # why the last connection attempt failed (doctor, tests)
        self._client: StationClient | None = None
        self._outbox_wakeup = asyncio.Event()
        self._in_flight: deque[tuple[OutboxEntry, Pending]] = deque()  # awaiting the broker's PUBACK
        self._sent_upto = 0  # highest outbox seq handed to the current connection
        # Acknowledged by the broker, awaiting the controller's receipt: seq -> when (monotonic),
        # oldest first; and the ones to send again, served before new entries.
        self._awaiting: dict[int, float] = {}
        self._resend: deque[int] = deque()
        self.sent_again = 0  # events sent again for want of a receipt (tests, diagnostics)
        self.connected = asyncio.Event()
        self.connections = 0
        self.connected_at: float | None = None  # wall time of the latest connection (reconnect spread)
        self.failed_attempts = 0  # connections refused or lost before they worked (bench reconnect)
        self.last_arrival = 0.0  # wall time the message being handled came off the socket
        # ... and when its bytes reached the socket (kernel clock), if noted: the fleet simulator
        # sets this before run() to tell the wait for its shared CPU from the network's part.
        self.stamp_socket_arrival = False
        self.last_socket_arrival: float | None = None
        self._stopping = False

    def wrap_handler(self, wrap: Callable[[MessageHandler], MessageHandler]) -> None:
        """Put `wrap(handler)` in place of the message handler: the fleet benchmark's probe
        notes when each command arrived and was handled, without the link knowing it."""
        self._on_message = wrap(self._on_message)

    def wake_outbox(self) -> None:
        """New events are in the store's outbox: send them now if the broker is there."""
        self._send_outbox()
        self._outbox_wakeup.set()

    @property
    def awaiting_receipt(self) -> int:
        """Events the broker acknowledged that no receipt has named yet."""
        return len(self._awaiting)

    def _send_outbox(self) -> None:
        """Hand outbox entries to the socket: first those to send again, then the ones not yet
        sent on this connection, oldest first. They stay in the outbox until a receipt names
        them (`_receipted`), or, without an event id, until their PUBACK (`_flush_outbox`)."""
        client = self._client
        room = OUTBOX_WINDOW - len(self._in_flight)
        if client is None or room <= 0 or not self.connected.is_set():
            return
        entries: list[OutboxEntry] = []
        if self._resend:
            again = [self._resend.popleft() for _ in range(min(room, len(self._resend)))]
            entries = self._store.outbox_entries(again)
        if len(entries) < room and self._store.outbox_last_seq > self._sent_upto:
            entries += self._store.outbox_head(room - len(entries), after=self._sent_upto)
        for entry in entries:
            try:
                pending = client.publish_nowait(entry.topic, entry.payload, qos=1)
            except PublishError:
                return  # the connection is going: the next one sends from the outbox again
            self._in_flight.append((entry, pending))
            self._sent_upto = max(self._sent_upto, entry.seq)

    def _warn_if_clear_text(self) -> None:
        if self._tls is not None or _is_loopback(self._host):
            return
        log.warning("%s: MQTT WITHOUT TLS to %s:%s: the broker password and all messages cross the network "
                    "unencrypted. Enable mqtt_tls (docs/enrollment.md, TLS) / MQTT KHÔNG MÃ HÓA: bật "
                    "mqtt_tls.",
                    self._client_id, self._host, self._port)

    async def run(self) -> None:
        self._warn_if_clear_text()
        while not self._stopping:
            delay: float | None = None  # drawn when the failure is logged, so the log says it
            try:
                will = aiomqtt.Will(self._state_topic, self._last_will, qos=1, retain=True)
                async with StationClient(
                    self._host,
                    self._port,
                    identifier=self._client_id,
                    username=self._username,
                    password=self._password,
                    clean_session=False,
                    keepalive=self._keepalive,
                    will=will,
                    timeout=10,
                    tls_context=self._tls,
                    stamp_socket_arrival=self.stamp_socket_arrival,
                ) as client:
                    await client.subscribe([(t, 1) for t in self._subscriptions])
                    await client.publish(self._state_topic, self._birth(), qos=1, retain=True)
                    self._client = client
                    self._forget_sent()  # a new connection sends the whole outbox again
                    self.connections += 1
                    self.connected_at = time.time()
                    self.last_error = None
                    self.connected.set()
                    self._backoff.reset()
                    flusher = asyncio.create_task(self._flush_outbox(client))
                    try:
                        async for message in client.messages:
                            if message.topic == self._receipt_topic:
                                self._receipted(message.payload)
                                continue
                            self.last_arrival = message.arrived_at
                            self.last_socket_arrival = message.reached_socket_at
                            try:
                                await self._on_message(message.topic, message.payload)
                            except Exception:
                                log.exception("handler failed for %s", message.topic)
                    finally:
                        flusher.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await flusher
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
                if self._client is None:  # never got as far as a working connection
                    self.failed_attempts += 1
                delay = self._backoff.next_delay()
                if self._stopping:
                    pass
                elif "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate" in str(exc).lower():
                    # Not a flaky 4G link: a wrong or impostor broker, or a stale CA. Say so every time.
                    log.error("%s: broker certificate REFUSED (%s): run `communecast agent doctor`; "
                              "retry in %.1fs", self._client_id, exc, delay)
                else:
                    log.info("%s: broker link down (%s); retry in %.1fs", self._client_id, exc, delay)
            finally:
                self.connected.clear()
                self._client = None
                self._forget_sent()
            if self._stopping:
                break
            await asyncio.sleep(self._backoff.next_delay() if delay is None else delay)

    def _forget_sent(self) -> None:
        self._in_flight.clear()
        self._sent_upto = 0
        self._awaiting.clear()
        self._resend.clear()

    async def _flush_outbox(self, client: StationClient) -> None:
        """Take each sent entry's PUBACK, in order, and keep the window full; send again what
        the broker acknowledged and no receipt named in time.

        It waits for a PUBACK however long the broker takes: a dead connection ends this task
        (the link cancels it), a slow one must not (aiomqtt's default 10 s timeout once killed
        the flusher until the next reconnect)."""
        while True:
            self._send_outbox()
            if not self._in_flight:
                self._outbox_wakeup.clear()
                try:
                    async with asyncio.timeout(self._receipt_due_in()):
                        await self._outbox_wakeup.wait()
                except TimeoutError:
                    self._send_unreceipted_again()
                continue
            entry, pending = self._in_flight[0]
            await pending.acked.wait()
            if not pending.published:  # the connection ended first: the next one sends it again
                return
            self._in_flight.popleft()
            if entry.event_id is None or self._receipt_topic is None:
                self._store.outbox_done(entry.seq)
            else:
                self._awaiting[entry.seq] = time.monotonic()

    def _receipt_due_in(self) -> float | None:
        """Seconds until the oldest acknowledged event has waited too long for its receipt."""
        if not self._awaiting:
            return None
        oldest = next(iter(self._awaiting.values()))
        return max(0.0, oldest + self._receipt_wait_s - time.monotonic())

    def _send_unreceipted_again(self) -> None:
        now = time.monotonic()
        late = [seq for seq, at in self._awaiting.items() if now - at >= self._receipt_wait_s]
        if not late:
            return
        for seq in late:
            del self._awaiting[seq]
        self._resend.extend(late)
        self.sent_again += len(late)
        log.info("%s: no receipt for %d event(s) within %.0f s (controller away?): sending them again",
                 self._client_id, len(late), self._receipt_wait_s)
        grown = self._receipt_wait_s * RECEIPT_WAIT_GROWTH
        # Jittered, so a fleet whose controller is down does not send again in lockstep.
        self._receipt_wait_s = min(self._receipt_cap_s, grown) * random.uniform(0.8, 1.0)  # noqa: S311 (spread, not secrecy)

    def _receipted(self, payload: bytes) -> None:
        """The controller stored these events: forget them (and wait the base time again)."""
        try:
            receipt = Receipt.model_validate_json(payload)
        except ValidationError as exc:
            log.warning("%s: malformed receipt ignored: %s", self._client_id, exc.errors()[0].get("msg"))
            return
        for seq in self._store.outbox_receipted(receipt.ids):
            self._awaiting.pop(seq, None)
        self._receipt_wait_s = self._receipt_base_s

    async def publish_now(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> bool:
        """Best-effort publish for data that is worthless when late (telemetry, state)."""
        client = self._client
        if client is None or not self.connected.is_set():
            return False
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError:
            return False
        return True

    async def close(self, goodbye: bytes | None = None) -> None:
        self._stopping = True
        if goodbye is not None:
            await self.publish_now(self._state_topic, goodbye, qos=1, retain=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
