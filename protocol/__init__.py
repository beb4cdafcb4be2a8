"""The communecast wire contract, shared by the controller and the device agents.

This package imports neither side. docs/protocol.md is its prose reference.
"""

from protocol.envelope import Envelope, SignedMessage
from protocol.messages import (
    CommandKind,
    DesiredState,
    Event,
    EventKind,
    MediaRef,
    Priority,
    RejectReason,
    ReportedState,
    ScheduleItem,
    Telemetry,
)
from protocol.signing import KeyPair, SignatureError, Signer, Verifier

PROTOCOL_VERSION = 1

__all__ = [
    "PROTOCOL_VERSION",
    "CommandKind",
    "DesiredState",
    "Envelope",
    "Event",
    "EventKind",
    "KeyPair",
    "MediaRef",
    "Priority",
    "RejectReason",
    "ReportedState",
    "ScheduleItem",
    "SignatureError",
    "SignedMessage",
    "Signer",
    "Telemetry",
    "Verifier",
]
