"""The gate every controller message passes: signature, validity window, target, replay."""

from __future__ import annotations

from datetime import datetime

from device_agents.common.store import AgentStore
from protocol import topics
from protocol.envelope import Envelope, Rejected, open_message
from protocol.messages import CommandKind, RejectReason
from protocol.signing import SignatureVerifier


class CommandGate:
    def __init__(self, uid: str, groups: dict[str, int], verifier: SignatureVerifier, store: AgentStore):
        """`verifier`: the station's trusted keys (device_agents/common/trust.py StationTrust)."""
        self._verifier = verifier
        self._store = store
        own = [topics.cmd(uid), topics.desired(uid), topics.group_cmd("all")]
        own += [topics.group_cmd(level, gid) for level, gid in groups.items()]
        self._targets = frozenset(topics.target_of(t) for t in own)
        # The key chain first: its retained copy then tends to arrive before a desired state
        # signed by a key learnt from it (the host also retries such a message: host.py).
        self.subscriptions = [topics.KEYS, *own]

    def open(self, payload: bytes, *, now: datetime | None = None) -> Envelope:
        env = open_message(payload, self._verifier, allowed_targets=self._targets, now=now)
        if env.kind is CommandKind.DESIRED_STATE:
            return env  # versioned; the agent decides whether it is new, a redelivery or stale
        if not self._store.remember(env.id, env.expires_at.timestamp()):
            raise Rejected(RejectReason.REPLAYED, "this message was already received", env.id)
        return env

