"""Why a station started a broadcast late (or missed it): one cause per station, from the
timestamps the controller already keeps.

The issue-18 storm probe found a bulletin that played 10 s late with nothing telling anyone.
An operator needs two things per station: how late, and whose fault, because the remedy
differs (the broker: the server room; the station: its link or its power; the station's own
start: its audio or a horn already busy). The causes, checked in this order:

- `started_late`: the station had the item before its start (it acknowledged it in time) and
  still started late: preparing the audio, or the horn was busy with something more urgent.
- `broker_unreachable`: the broker did not answer the controller (a recorded outage,
  controller/services/broker_outages.py) between the broadcast's creation and the moment the
  station got it: the command could not go out.
- `sent_late`: the controller first sent it after the start (it was down or behind).
- `received_late`: sent in time, received after the start: the station was offline or its
  link was slow.

The acknowledgement time is the station's clock, good to its reported offset (milliseconds),
which is far below the LATE_MS threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

LATE_MS = 1000.0  # later than this is worth telling an operator; normal starts are within ~50 ms
STARTED = ("played", "interrupted", "playing")


class LateCause(StrEnum):
    STARTED_LATE = "started_late"
    BROKER_UNREACHABLE = "broker_unreachable"
    SENT_LATE = "sent_late"
    RECEIVED_LATE = "received_late"


@dataclass(frozen=True)
class Outage:
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class StationTimes:
    """What the controller knows about one station and one broadcast."""

    start_at: datetime  # when the broadcast should start
    created_at: datetime
    sent_at: datetime | None  # first put in the station's desired state / PLAY
    received_at: datetime | None  # the station's acknowledgement
    status: str | None  # the play log's status; None: nothing reported yet
    start_error_ms: float | None
    cancelled: bool = False  # the broadcast's own status (`bc.status`) says it was cancelled


@dataclass(frozen=True)
class Lateness:
    late_ms: float | None  # how late it started; None: it has not started (missed, or not yet)
    cause: LateCause
    received_at: datetime | None
    outage: Outage | None  # the broker outage behind it, for broker_unreachable

    def body(self) -> dict[str, object]:
        return {
            "late_ms": None if self.late_ms is None else round(self.late_ms, 1),
            "cause": self.cause.value,
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "outage_from": self.outage.started_at.isoformat() if self.outage else None,
            "outage_to": (self.outage.ended_at.isoformat()
                          if self.outage and self.outage.ended_at else None),
        }  # fmt: skip


def is_late(t: StationTimes, now: datetime) -> bool:
    """Started more than LATE_MS late, missed, or still not started LATE_MS after the start.

    A cancelled broadcast is not late where it did not start: no station was to play it any
    more (one that went on air before the cancel keeps its measured lateness)."""
    if t.status in STARTED:
        return t.start_error_ms is not None and t.start_error_ms > LATE_MS
    if t.cancelled:
        return False
    if t.status == "missed":
        return True
    return t.status is None and now - t.start_at > timedelta(milliseconds=LATE_MS)


def explain(t: StationTimes, outages: list[Outage], now: datetime) -> Lateness | None:
    """None when the station was on time (or the broadcast has not started yet)."""
    if not is_late(t, now):
        return None
    late_ms = t.start_error_ms if t.status in STARTED else None
    if t.received_at is not None and t.received_at <= t.start_at:
        return Lateness(late_ms, LateCause.STARTED_LATE, t.received_at, None)
    until = t.received_at or now
    for o in outages:
        if o.started_at <= until and (o.ended_at is None or o.ended_at >= t.created_at):
            return Lateness(late_ms, LateCause.BROKER_UNREACHABLE, t.received_at, o)
    if t.sent_at is not None and t.sent_at > t.start_at:
        return Lateness(late_ms, LateCause.SENT_LATE, t.received_at, None)
    return Lateness(late_ms, LateCause.RECEIVED_LATE, t.received_at, None)
