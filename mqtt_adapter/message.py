"""The adapter's own received message: what the project reads of an MQTT message, as fields.

Why its own type and not aiomqtt's `Message` or paho's `MQTTMessage`: the project needs two
instants per message that neither library records — when this process took it off the
socket (`arrived_at`) and, in the fleet simulator, when its bytes reached the socket
(`reached_socket_at`) — and they used to be set as ad-hoc attributes on the library's object
(each read with a `type: ignore`). A frozen dataclass also makes a message safe to hand to
another task or thread: nobody can change it after the client made it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Message:
    """One received MQTT message.

    `arrived_at`: wall clock (unix seconds) when this process read it off its socket; the
    handler may run later, when the event loop gets to it, and the difference is time spent
    waiting for this CPU. `reached_socket_at`: the kernel's receive time of its bytes, only
    when the client was asked to note it (`StationClient(stamp_socket_arrival=True)`), else
    None.
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    arrived_at: float = field(default_factory=time.time)
    reached_socket_at: float | None = None
