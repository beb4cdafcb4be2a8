"""The versioned MQTT topic tree (cc/v1/...).

Controller -> device:  cc/v1/dev/{uid}/cmd      signed commands, QoS 1, not retained
                       cc/v1/dev/{uid}/desired  signed desired state, QoS 1, retained
                       cc/v1/grp/{level}/{id}/cmd  signed group commands (one publish, many stations)
                       cc/v1/grp/all/cmd        every station
                       cc/v1/keys               the signing-key chain (protocol/keychain.py), retained
                       cc/v1/dev/{uid}/rcpt     event receipts: "these events are stored", QoS 0
Device -> controller:  cc/v1/dev/{uid}/state    reported state, retained (birth + Last Will)
                       cc/v1/dev/{uid}/evt      events (acks, proof of play, faults), QoS 1
                       cc/v1/dev/{uid}/tele     telemetry, QoS 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ROOT = "cc/v1"
GroupLevel = Literal["province", "district", "commune", "village", "tag"]
GROUP_LEVELS: tuple[str, ...] = ("province", "district", "commune", "village", "tag")

DEVICE_CHANNELS = ("cmd", "desired", "rcpt", "state", "evt", "tele")

# The controller's signing-key chain (links and revocations, protocol/keychain.py): one retained
# message for every station, written only by the controller (docs/security.md, key rotation).
KEYS = f"{ROOT}/keys"


def device(uid: str, channel: str) -> str:
    if channel not in DEVICE_CHANNELS:
        raise ValueError(f"unknown device channel {channel!r}")
    _check_segment(uid)
    return f"{ROOT}/dev/{uid}/{channel}"


def cmd(uid: str) -> str:
    return device(uid, "cmd")


def desired(uid: str) -> str:
    return device(uid, "desired")


def receipts(uid: str) -> str:
    return device(uid, "rcpt")


def state(uid: str) -> str:
    return device(uid, "state")


def events(uid: str) -> str:
    return device(uid, "evt")


def telemetry(uid: str) -> str:
    return device(uid, "tele")


def group_cmd(level: str, group_id: str | int | None = None) -> str:
    """Group command topic; level 'all' addresses every station."""
    if level == "all":
        return f"{ROOT}/grp/all/cmd"
    if level not in GROUP_LEVELS:
        raise ValueError(f"unknown group level {level!r}")
    _check_segment(str(group_id))
    return f"{ROOT}/grp/{level}/{group_id}/cmd"


def controller_probe(client_id: str) -> str:
    """Where a controller publishes its broker round-trip probes (nobody subscribes; the
    broker's PUBACK is the answer). Inside the controller's ACL, outside every station's."""
    _check_segment(client_id)
    return f"{ROOT}/ctl/{client_id}/probe"


# Subscriptions the controller makes to ingest everything stations say.
CONTROLLER_SUBSCRIPTIONS = (
    f"{ROOT}/dev/+/state",
    f"{ROOT}/dev/+/evt",
    f"{ROOT}/dev/+/tele",
)


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    uid: str
    channel: str


def parse_device_topic(topic: str) -> DeviceTopic | None:
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[2] != "dev":
        return None
    if parts[4] not in DEVICE_CHANNELS:
        return None
    return DeviceTopic(uid=parts[3], channel=parts[4])


def target_of(topic: str) -> str:
    """The 'target' string an envelope must carry to be valid on this topic.

    Binding the signature to its destination stops a command signed for one
    station (or commune) from being replayed onto another.
    """
    prefix = ROOT + "/"
    if not topic.startswith(prefix):
        raise ValueError(f"not a communecast topic: {topic}")
    rest = topic[len(prefix):]
    return rest.rsplit("/", 1)[0] if rest.endswith(("/cmd", "/desired")) else rest


def _check_segment(segment: str) -> None:
    if not segment or any(c in segment for c in "/+#\x00"):
        raise ValueError(f"invalid topic segment {segment!r}")
