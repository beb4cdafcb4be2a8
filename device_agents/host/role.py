"""What a station kind is to its host: a role behind this small protocol.

The host does everything stations share; a role only says what desired state and commands
mean for its hardware, what it adds to the retained state and telemetry, and which
diagnostic actions it can run. A new station kind is one module with one role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from device_agents.common.config import AgentConfig
from device_agents.common.store import AgentStore
from device_agents.host.events import EventLog
from protocol.envelope import Envelope, Rejected
from protocol.messages import DesiredState, RejectReason
from protocol.ops import DiagnosticAction

DiagnosticHandler = Callable[[str, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class RoleKit:
    """What the host lends a role when it makes it; the role never sees the host itself."""

    config: AgentConfig
    store: AgentStore
    events: EventLog
    report_state: Callable[[], Awaitable[None]]  # publish the retained state again (it changed)
    publish: Callable[..., Awaitable[bool]]  # the link's publish_now(topic, payload, qos=, retain=)


class Role(Protocol):
    def resume(self) -> None:
        """Pick up what the store says was in progress when the agent last stopped."""

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The role's background work, by task name suffix; the host runs and cancels it."""

    def apply_desired(self, state: DesiredState) -> list[str]:
        """Take a new (verified, newer) desired state; return the item ids its ack names."""

    async def command(self, env: Envelope) -> None:
        """A verified command other than desired state, ping, diagnostic or update.

        Raise Rejected (see `unsupported`) for a kind the role does not take."""

    def reported(self) -> dict[str, Any]:
        """The role's fields of the retained ReportedState."""

    async def telemetry(self) -> dict[str, Any]:
        """The role's fields of one Telemetry message (and its once-a-period housekeeping)."""

    def diagnostic_actions(self) -> Mapping[DiagnosticAction, DiagnosticHandler]:
        """The hardware diagnostics this role can run; the others are `not_supported`."""

    async def stop(self) -> None:
        """Stop what is in progress and release the hardware; the link is already closed."""


def unsupported(env: Envelope, where: str = "") -> Rejected:
    return Rejected(RejectReason.UNSUPPORTED, f"kind {env.kind}{where}", env.id)
