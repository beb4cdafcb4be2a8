"""Event receipts: after each ingest commit, each station is told which of its events are stored.

A station forgets an event only then (device_agents/common/link.py), so the broker's memory
and the controller's unstored batch are never the only copy of a proof of play. QoS 0 on
purpose: a lost receipt costs one resend, which the ingest recognises by event id and
receipts again; a QoS 1 receipt would double the packets on the emergency's ack path.
"""

from __future__ import annotations

from collections.abc import Callable

from protocol import topics
from protocol.limits import RECEIPT_MAX_IDS
from protocol.messages import Receipt

Send = Callable[[list[tuple[str, bytes]]], bool]  # (topic, payload) pairs, QoS 0, one write


class ReceiptSender:
    def __init__(self, send: Send) -> None:
        self._send = send
        self.sent = 0  # receipts handed to the broker connection
        self.unsent = 0  # not connected at the time: those stations will send their events again

    def __call__(self, stored: dict[str, list[str]]) -> None:
        """One receipt per station (more past RECEIPT_MAX_IDS ids), all of a batch in one write."""
        messages = [
            (topics.receipts(uid), Receipt(ids=ids[i : i + RECEIPT_MAX_IDS]).model_dump_json().encode())
            for uid, ids in stored.items()
            for i in range(0, len(ids), RECEIPT_MAX_IDS)
        ]
        if self._send(messages):
            self.sent += len(messages)
        else:
            self.unsent += len(messages)
