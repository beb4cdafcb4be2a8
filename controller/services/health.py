"""What /healthz reports: is the database reachable, does the broker answer, how much is
waiting to be published. Used by load balancers, supervisors (systemd, compose) and people.

The broker counts as up only when it acknowledged the bus's last round-trip probe recently
(controller/mqtt/bus.py): a frozen broker keeps its socket open and would otherwise look fine
while every broadcast queued behind it plays late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import text

from controller.db.session import Database
from controller.services import dispatch


class BrokerLink(Protocol):
    round_trip_ms: float | None

    def answering(self) -> bool: ...


@dataclass(frozen=True)
class Health:
    database: bool
    broker: bool
    broker_round_trip_ms: float | None
    publish_backlog: int | None  # queued desired-state publishes (dispatch_queue rows); None: no database

    @property
    def ok(self) -> bool:
        return self.database and self.broker

    def body(self) -> dict[str, object]:
        return {
            "database": "ok" if self.database else "down",
            "mqtt": "ok" if self.broker else "down",
            "mqtt_round_trip_ms": (None if self.broker_round_trip_ms is None
                                   else round(self.broker_round_trip_ms, 1)),
            "publish_backlog": self.publish_backlog,
        }


def check(db: Database, broker: BrokerLink) -> Health:
    backlog: int | None
    try:
        with db.session() as s:
            s.execute(text("SELECT 1"))
            backlog = dispatch.backlog(s)
    except Exception:
        backlog = None
    answering = broker.answering()
    return Health(database=backlog is not None, broker=answering,
                  broker_round_trip_ms=broker.round_trip_ms if answering else None,
                  publish_backlog=backlog)  # fmt: skip
