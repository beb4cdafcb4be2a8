"""Prometheus metrics (docs/health.md): counters and histograms fed in-process, gauges read
from the database at scrape time.

The gauges (stations online, alarms open) come from the database rather than from this
process's memory, so every replica reports the same truth. The counters are per process;
Prometheus sums them over replicas. One module-level registry (not the global default) keeps
the output to communecast's own series and lets tests build several controllers in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controller.db.models import Device
from controller.db.models_dispatch import DispatchQueue
from controller.db.models_health import Alarm
from controller.db.session import Database
from controller.db.statuses import AlarmState

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()

MESSAGES = Counter(
    "communecast_messages_ingested_total",
    "Station messages received by the controller, by channel (state, evt, tele); rate() = messages/s",
    ["channel"], registry=REGISTRY,
)  # fmt: skip
INGEST_BATCH = Histogram(
    "communecast_ingest_batch_seconds", "Time to store one ingest batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=REGISTRY,
)  # fmt: skip
DISPATCH_LATENCY = Histogram(
    "communecast_dispatch_latency_seconds",
    "From a station being marked dirty to its desired state being published",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY,
)  # fmt: skip
NOTIFICATIONS = Counter(
    "communecast_alarm_notifications_total", "Alarm notifications by notifier and outcome (sent, failed)",
    ["notifier", "outcome"], registry=REGISTRY,
)  # fmt: skip
ALARM_TRANSITIONS = Counter(
    "communecast_alarm_transitions_total", "Alarm changes by kind and event (opened, acknowledged, resolved)",
    ["kind", "event"], registry=REGISTRY,
)  # fmt: skip
PLAY_EVENTS_REFUSED = Counter(
    "communecast_play_events_refused_total",
    "Proof-of-play events refused: the item was never delivered to that station (docs/security.md)",
    registry=REGISTRY,
)
EVENT_FIELDS_TRUNCATED = Counter(
    "communecast_event_fields_truncated_total",
    "Station events whose reason or detail was cut to its limit (protocol/limits.py), by field",
    ["field"], registry=REGISTRY,
)  # fmt: skip
MEDIA_SERVED = Counter(
    "communecast_media_served_total",
    "Media files served to stations (GET /media/<sha256>, a Range request included); audio inside "
    "an emergency PLAY is not fetched (docs/emergency.md)",
    registry=REGISTRY,
)
DESIRED_STATE_TRIMMED = Counter(
    "communecast_desired_state_trimmed_total",
    "Desired states cut to desired_state_max_bytes at publish time (items dropped from the far end)",
    registry=REGISTRY,
)


def count_channels(channels: Iterable[str]) -> None:
    counts: dict[str, int] = {}
    for c in channels:
        counts[c] = counts.get(c, 0) + 1
    for c, n in counts.items():
        MESSAGES.labels(c).inc(n)


def observe_dispatch(queued_at: dict[int, datetime], published: Iterable[int]) -> None:
    now = datetime.now(UTC)
    for device_id in published:
        since = queued_at.get(device_id)
        if since is not None:
            DISPATCH_LATENCY.observe(max((now - since).total_seconds(), 0.0))


def queued_since(session: Session, device_ids: list[int]) -> dict[int, datetime]:
    """The oldest pending mark of each station (the start of its dispatch latency)."""
    out: dict[int, datetime] = {}
    for i in range(0, len(device_ids), 1000):
        chunk = device_ids[i : i + 1000]
        q = (select(DispatchQueue.device_id, func.min(DispatchQueue.queued_at))
             .where(DispatchQueue.device_id.in_(chunk)).group_by(DispatchQueue.device_id))  # fmt: skip
        out.update({d: t for d, t in session.execute(q)})
    return out


class DatabaseGauges(Collector):
    """Stations online/offline by kind and alarms by kind and state, read at each scrape."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stations = GaugeMetricFamily("communecast_stations", "Stations by kind and status (online, offline)",
                                     labels=["kind", "status"])  # fmt: skip
        alarms = GaugeMetricFamily("communecast_alarms_open", "Alarms not yet resolved, by kind and state",
                                   labels=["kind", "state"])  # fmt: skip
        online = GaugeMetricFamily("communecast_stations_online", "Stations online now")
        try:
            with self._db.session() as s:
                counts = s.execute(select(Device.kind, Device.online, func.count())
                                   .where(Device.retired_at.is_(None))
                                   .group_by(Device.kind, Device.online)).all()  # fmt: skip
                open_ = s.execute(select(Alarm.kind, Alarm.state, func.count())
                                  .where(Alarm.state != AlarmState.RESOLVED)
                                  .group_by(Alarm.kind, Alarm.state)).all()  # fmt: skip
        except Exception:
            log.exception("metrics: database read failed")
            return
        total_online = 0
        for kind, is_online, n in counts:
            stations.add_metric([kind, "online" if is_online else "offline"], n)
            total_online += n if is_online else 0
        online.add_metric([], total_online)
        for kind, state, n in open_:
            alarms.add_metric([kind, state], n)
        yield online
        yield stations
        yield alarms


_gauges: DatabaseGauges | None = None


def attach_database(db: Database) -> None:
    """Read gauges from this controller's database (the latest runtime wins)."""
    global _gauges
    if _gauges is not None:
        REGISTRY.unregister(_gauges)
    _gauges = DatabaseGauges(db)
    REGISTRY.register(_gauges)


def render() -> bytes:
    return generate_latest(REGISTRY)
