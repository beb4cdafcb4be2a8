"""The station host: everything a station does whatever its kind, with a role for the rest.

It owns the MQTT link (birth and Last Will in the retained state topic), the command gate,
the SQLite store and its outbox, the event log, remote diagnostics, signed updates and the
telemetry loop. Signed desired state is checked for staleness here; what it means for the
hardware is the role's (device_agents/speaker/role.py, device_agents/led/role.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from device_agents.common import health, logbuffer
from device_agents.common.config import AgentConfig
from device_agents.common.gate import CommandGate
from device_agents.common.link import AgentLink
from device_agents.common.store import AgentStore
from device_agents.common.tls import agent_context
from device_agents.common.trust import StationTrust
from device_agents.common.updater import Updater, running_version
from device_agents.host.diagnostics import Diagnostics, HostHooks
from device_agents.host.events import EventLog, now
from device_agents.host.role import Role, RoleKit
from mqtt_adapter import Backoff
from protocol import topics
from protocol.envelope import Envelope, Rejected
from protocol.messages import CommandKind, DesiredState, EventKind, RejectReason, ReportedState, Telemetry

log = logging.getLogger(__name__)

AGENT_VERSION = running_version()  # the installed release, reported at birth (docs/operations.md)

R = TypeVar("R", bound=Role)

UNKNOWN_KEY_HELD = 16  # commands signed by a not-yet-known key kept until the key chain arrives


class StationHost(Generic[R]):
    def __init__(
        self, config: AgentConfig, make_role: Callable[[RoleKit], R], *, store: AgentStore | None = None
    ) -> None:
        """`make_role` builds the station's role from what the host lends it (RoleKit)."""
        self.cfg = config
        self.uid = config.uid
        self.store = store or AgentStore(config.data_dir / "agent.sqlite3")
        # The controller keys, following rotations and revocations (docs/security.md, key rotation).
        self.trust = StationTrust(config.controller_public_keys, self.store)
        self.gate = CommandGate(config.uid, config.groups, self.trust, self.store)
        # Messages signed by a key not trusted yet, kept for a moment: after a rotation the new
        # desired state (retained) or a queued command may arrive before the chain that
        # introduces its key. Retried when the chain teaches a key; refused (and reported) meanwhile.
        self._unknown_key: dict[str, bytes] = {}
        self.link = AgentLink(
            host=config.mqtt_host,
            port=config.mqtt_port,
            client_id=config.uid,
            username=config.mqtt_username,
            password=config.mqtt_password,
            keepalive=config.mqtt_keepalive_s,
            subscriptions=self.gate.subscriptions,
            state_topic=topics.state(config.uid),
            birth=self._birth,
            last_will=ReportedState(online=False, kind=config.kind).model_dump_json().encode(),
            store=self.store,
            on_message=self._on_message,
            tls=agent_context(config),  # None: plain MQTT (docs/enrollment.md, TLS)
            backoff=Backoff(base_s=config.mqtt_reconnect_base_s,
                            cap_s=max(config.mqtt_reconnect_cap_s, config.mqtt_reconnect_base_s)),
            receipt_topic=topics.receipts(config.uid),
            receipt_wait_s=config.receipt_wait_s,
            receipt_wait_cap_s=config.receipt_wait_cap_s,
        )
        self.events = EventLog(self.uid, self.store, self.link.wake_outbox)
        self.role: R = make_role(RoleKit(config=config, store=self.store, events=self.events,
                                         report_state=self.report_state, publish=self.link.publish_now))
        self.rejections: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = time.monotonic()
        # Remote diagnostics and signed updates (docs/operations.md): closed actions, no shell.
        logs = logbuffer.install()
        logs.add_secret(config.mqtt_password)
        self.diagnostics = Diagnostics(HostHooks(uid=self.uid, store=self.store, emit=self.events.emit,
                                                 logs=logs), self.role.diagnostic_actions())
        self.updater = Updater(config, emit=self.events.emit, on_applied=self.diagnostics.request_restart,
                               verifier=self.trust)

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.role.resume()
        self._tasks = [
            asyncio.create_task(self.link.run(), name=f"{self.uid}-link"),
            asyncio.create_task(self._telemetry_loop(), name=f"{self.uid}-tele"),
        ]
        for name, loop in self.role.loops().items():
            self._tasks.append(asyncio.create_task(loop, name=f"{self.uid}-{name}"))
        self._tasks.append(asyncio.create_task(self.updater.watch_boot(self.link.connected),
                                               name=f"{self.uid}-release-confirm"))

    async def stop(self) -> None:
        goodbye = ReportedState(online=False, ts=now(), kind=self.cfg.kind)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.link.close(goodbye.model_dump_json().encode()), 2)
        await self.diagnostics.close()
        await self.updater.close()
        for task in self._tasks:
            await _cancelled(task)
        await self.role.stop()
        self.store.close()

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # -- the retained state ----------------------------------------------------------------------------
    def _birth(self) -> bytes:
        state = ReportedState(
            online=True,
            ts=now(),
            kind=self.cfg.kind,
            agent_version=AGENT_VERSION,
            desired_version=int(self.store.get("desired_version", "0") or 0),
            **self.role.reported(),
        )
        return state.model_dump_json().encode()

    async def report_state(self) -> None:
        """Something in the retained state changed: publish it again."""
        await self.link.publish_now(topics.state(self.uid), self._birth(), qos=1, retain=True)

    # -- messages ----------------------------------------------------------------------------------------
    async def _on_message(self, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a retained message was cleared
        if topic == topics.KEYS:
            await self._on_key_chain(payload)
            return
        env: Envelope | None = None
        try:
            env = self.gate.open(payload)
            if env.kind is CommandKind.DESIRED_STATE:
                self._apply_desired(env)
            elif env.kind is CommandKind.PING:
                self.events.emit(EventKind.ACK, ref=env.id)
            elif env.kind is CommandKind.DIAGNOSTIC:
                self.diagnostics.accept(env)  # result comes as a diagnostic_result event
            elif env.kind is CommandKind.UPDATE:
                self.updater.accept(env)  # outcome: update_applied / _rolled_back / _refused
            else:
                await self.role.command(env)
        except Rejected as rej:
            if rej.reason is RejectReason.BAD_SIGNATURE and "unknown signing key" in str(rej):
                self._hold_unknown_key(topic, payload)
            self.rejections[rej.reason.value] = self.rejections.get(rej.reason.value, 0) + 1
            log.warning("%s rejected a message on %s: %s (%s)", self.uid, topic, rej.reason, rej)
            self.events.emit(EventKind.REJECTED, ref=rej.envelope_id, reason=rej.reason.value,
                             detail={"topic": topic, "message": str(rej)})
        except ValueError as exc:  # a signed body that does not validate
            self.rejections["malformed"] = self.rejections.get("malformed", 0) + 1
            self.events.emit(EventKind.REJECTED, ref=env.id if env is not None else None,
                             reason=RejectReason.MALFORMED.value,
                             detail={"topic": topic, "message": str(exc)[:300]})

    # -- the controller's key chain (protocol/keychain.py) --------------------------------------------
    async def _on_key_chain(self, payload: bytes) -> None:
        try:
            outcome = self.trust.apply_chain(payload)
        except ValueError as exc:
            self._reject_chain(RejectReason.MALFORMED, str(exc)[:300])
            return
        if outcome is None:
            return
        for refusal in outcome.refused:
            self._reject_chain(RejectReason.BAD_KEY_LINK,
                               f"{refusal.what} of key {refusal.kid or '?'}: {refusal.reason}")
        if outcome.learned or outcome.revoked:
            log.warning("%s: controller keys learnt %s, revoked %s", self.uid, outcome.learned,
                        outcome.revoked)
        if outcome.learned:
            held, self._unknown_key = self._unknown_key, {}
            for topic, message in held.items():
                await self._on_message(topic.split("#", 1)[0], message)

    def _reject_chain(self, reason: RejectReason, message: str) -> None:
        self.rejections[reason.value] = self.rejections.get(reason.value, 0) + 1
        log.warning("%s refused part of the key chain: %s", self.uid, message)
        self.events.emit(EventKind.REJECTED, reason=reason.value,
                         detail={"topic": topics.KEYS, "message": message})

    def _hold_unknown_key(self, topic: str, payload: bytes) -> None:
        if topic == topics.desired(self.uid):
            self._unknown_key[topic] = payload  # only the newest desired state matters
            return
        commands = [k for k in self._unknown_key if "#" in k]
        if len(commands) >= UNKNOWN_KEY_HELD:
            del self._unknown_key[commands[0]]
        self._unknown_key[f"{topic}#{len(self._unknown_key)}-{time.monotonic()}"] = payload

    def _apply_desired(self, env: Envelope) -> None:
        state = DesiredState.model_validate(env.body)
        applied = int(self.store.get("desired_version", "0") or 0)
        if state.version == applied and env.id == self.store.get("desired_id"):
            return  # the same retained message again after a reconnect: nothing to do
        if state.version <= applied:
            raise Rejected(RejectReason.STALE, f"version {state.version} <= {applied}", env.id)
        # The role's part first: a crash in between means the same message is applied again.
        items = self.role.apply_desired(state)
        self.store.put("desired_version", str(state.version))
        self.store.put("desired_id", env.id)
        self.events.emit(EventKind.ACK, ref=env.id, detail={"version": state.version, "items": items})

    # -- telemetry -----------------------------------------------------------------------------------------
    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.telemetry_interval_s)
            await self.publish_telemetry()

    async def publish_telemetry(self) -> None:
        tele: dict[str, Any] = {"ts": now(), "uptime_s": time.monotonic() - self._started}
        tele |= (await health.collect(self.cfg.data_dir)).as_telemetry()  # docs/health.md
        tele |= await self.role.telemetry()
        payload = Telemetry.model_validate(tele).model_dump_json().encode()
        await self.link.publish_now(topics.telemetry(self.uid), payload)


async def _cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel `task` until it ends. On Python 3.11 `asyncio.wait_for` (aiomqtt's connect,
    subscribe and publish use it) loses a cancellation that lands as the awaited call
    completes: the link then went on to wait for messages forever and the agent never
    stopped (a station stopped during its first second hung a test's teardown for good)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()  # retrieved: a task that failed earlier is not reported again at exit
