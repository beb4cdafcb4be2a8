"""The narrow way a service sends a signed command straight to stations (not through the
desired state): a signer and a bus that can publish. Diagnostics, agent updates and
emergencies take this instead of the whole running controller, so they can be driven and
tested with only what they use, and no service imports controller.runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from protocol.signing import Signer


class CommandBus(Protocol):
    """What of the MQTT bus (controller/mqtt/bus.py MqttBus) commands need."""

    @property
    def connected(self) -> asyncio.Event: ...

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None: ...

    def hand_over(self, messages: list[tuple[str, bytes]]) -> Awaitable[None]: ...


@dataclass(frozen=True)
class StationCommands:
    signer: Signer
    bus: CommandBus
