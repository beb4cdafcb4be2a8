"""A station's events: written to the durable outbox, never straight to the broker.

The link publishes the outbox after a reconnect too, so an event survives a broker outage
or an agent restart; `build` lets a caller write the event in the same store transaction as
the state change it reports (proof of play, docs/architecture.md step 7).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from device_agents.common.store import AgentStore, QueuedEvent
from protocol import topics
from protocol.messages import Event, EventKind


class EventLog:
    def __init__(self, uid: str, store: AgentStore, wake: Callable[[], None]) -> None:
        self.uid = uid
        self._store = store
        self._wake = wake

    def build(self, kind: EventKind, **fields: Any) -> QueuedEvent:
        """The event ready for the outbox, for a caller that stores it in its own transaction."""
        event = Event(id=uuid.uuid4().hex, kind=kind, ts=now(), **fields)
        return QueuedEvent(topics.events(self.uid), event.model_dump_json().encode(), event.id)

    def emit(self, kind: EventKind, **fields: Any) -> None:
        queued = self.build(kind, **fields)
        self._store.enqueue(queued.topic, queued.payload, queued.event_id)
        self._wake()

    def stored(self) -> None:
        """An event went into the outbox by another path (`build`): publish it soon."""
        self._wake()


def now() -> datetime:
    return datetime.now(UTC)
