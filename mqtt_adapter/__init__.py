"""The project's one MQTT adapter: aiomqtt/paho with the deviations the project needs.

Everything that reaches into paho's or aiomqtt's private members lives in `client.py` (and
only there); everyone else — the controller's bus, the agents' link, the fleet simulator and
the benchmarks' bare subscribers — uses the public names below. The agent extra ships this
package: a Pi installs `communecast[agent]`.
"""

from mqtt_adapter.backoff import Backoff
from mqtt_adapter.client import (
    AdapterClient,
    BatchHandler,
    ControllerClient,
    Pending,
    PublishError,
    StationClient,
)
from mqtt_adapter.message import Message

__all__ = [
    "AdapterClient",
    "Backoff",
    "BatchHandler",
    "ControllerClient",
    "Message",
    "Pending",
    "PublishError",
    "StationClient",
]
