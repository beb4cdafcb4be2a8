"""How a broadcast is doing, station by station: the state of each station (with the reason
when it is not on air), the counts per state and the measured start skew.

Read by GET /api/v1/broadcasts/{id} and the panel's emergency page for every broadcast, normal
or emergency; so it lives here, not in services/emergency.py (which sends emergencies).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Broadcast, Delivery, Device, DeviceEvent, PlayLog, User
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.statuses import BroadcastStatus, DeliveryState
from controller.services import broker_outages
from controller.services.lateness import Outage, StationTimes, explain
from protocol.messages import EventKind


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def station_states(
    session: Session, bc: Broadcast, now: datetime | None = None, *, communes: set[int] | None = None
) -> list[dict[str, Any]]:
    """Per station: pending / acked / playing / played / interrupted / failed / missed / rejected /
    offline, with the reason, from the deliveries, the play log and the station's presence;
    and, for a station that started late or not at all, how late and why (services/lateness.py).
    `communes`: only the stations of these communes (the caller's area; None: every station)."""
    now = now or datetime.now(UTC)
    q = (select(Delivery, Device.uid, Device.name, Device.online, Device.reported)
         .join(Device, Device.id == Delivery.device_id)
         .where(Delivery.broadcast_id == bc.id).order_by(Delivery.device_id))  # fmt: skip
    if communes is not None:
        q = q.where(Device.commune_id.in_(communes or {-1}))
    rows = session.execute(q).all()
    plays = {p.device_id: p for p in session.scalars(select(PlayLog).where(PlayLog.broadcast_id == bc.id))}
    # A station that refused the group PLAY (expired, bad signature...) names its envelope, not the item.
    play_ids = session.scalar(select(EmergencyBroadcast.play_ids)
                              .where(EmergencyBroadcast.broadcast_id == bc.id)) or []
    refused: dict[int, str | None] = {}
    if play_ids:
        for dev, body in session.execute(select(DeviceEvent.device_id, DeviceEvent.body).where(
                DeviceEvent.kind == EventKind.REJECTED.value, DeviceEvent.ref.in_(play_ids))):
            refused[dev] = (body or {}).get("reason")
    outages = [Outage(o.started_at, o.ended_at)
               for o in broker_outages.overlapping(session, bc.created_at, now)] if rows else []
    out = []
    for d, uid, name, online, reported in rows:
        play = plays.get(d.device_id)
        reason: str | None = None
        if play is not None:
            state, reason = play.status, play.reason
        elif d.state == DeliveryState.REJECTED or d.device_id in refused:
            state, reason = "rejected", d.detail or refused.get(d.device_id)
        elif d.state == DeliveryState.ACKED:
            state = "acked"
        elif not online:
            state, reason = "offline", "station offline when sent"
        else:
            state = "pending"
        offset = (reported or {}).get("clock_offset_ms")
        times = StationTimes(start_at=bc.start_at, created_at=bc.created_at, sent_at=d.sent_at,
                             received_at=d.acked_at, status=play.status if play else None,
                             start_error_ms=play.start_error_ms if play else None,
                             cancelled=bc.status == BroadcastStatus.CANCELLED)
        # Lateness follows the broadcast's own status (a cancelled one: only stations that did
        # start can be late), not a per-station state; a station that refused it is not late.
        late = explain(times, outages, now) if state != "rejected" else None
        out.append({
            "device_id": d.device_id, "uid": uid, "name": name, "state": state, "reason": reason,
            "sent_at": _iso(d.sent_at), "acked_at": _iso(d.acked_at), "ready_at": _iso(d.ready_at),
            "started_at": _iso(play.started_at) if play else None,
            "start_error_ms": play.start_error_ms if play else None,
            "clock_offset_ms": offset,
            "lateness": late.body() if late else None,
        })  # fmt: skip
    return out


def skew(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Start error against the instant as each station measured it on its own (NTP-disciplined)
    clock: p50 / p99 / max, the skew from the median start and the spread. The same corrected by
    each station's reported clock offset (station minus controller) is shown beside it: it says
    whether the clocks themselves disagree."""
    raw = [s["start_error_ms"] for s in states if s["start_error_ms"] is not None]
    if not raw:
        return {"stations": 0}
    corrected = [s["start_error_ms"] - (s["clock_offset_ms"] or 0.0)
                 for s in states if s["start_error_ms"] is not None]
    median = percentile(raw, 0.5)
    dev = [abs(c - median) for c in raw]
    cmedian = percentile(corrected, 0.5)
    cdev = [abs(c - cmedian) for c in corrected]
    offsets = [abs(s["clock_offset_ms"]) for s in states if s["clock_offset_ms"] is not None]
    return {
        "stations": len(raw),
        "start_error_ms": _stats(raw, median),
        "skew_ms": _stats(dev, percentile(dev, 0.5)),
        "spread_ms": round(max(raw) - min(raw), 2),
        "offset_corrected": {"skew_p99_ms": round(percentile(cdev, 0.99), 2),
                             "spread_ms": round(max(corrected) - min(corrected), 2)},
        "clock_offset_abs_ms": {"p99": round(percentile(offsets, 0.99), 2), "max": round(max(offsets), 2),
                                "reported": len(offsets)} if offsets else None,
    }  # fmt: skip


def _stats(values: list[float], p50: float) -> dict[str, float]:
    return {"p50": round(p50, 2), "p99": round(percentile(values, 0.99), 2), "max": round(max(values), 2)}


def stations_part(session: Session, bc: Broadcast, communes: set[int] | None) -> dict[str, Any]:
    """Station states, counts per state and skew, over the stations of `communes` (None: all)."""
    states = station_states(session, bc, communes=communes)
    counts: dict[str, int] = {}
    for s in states:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    return {"station_states": states, "counts": counts, "skew": skew(states)}


def summary(session: Session, bc: Broadcast, communes: set[int] | None = None) -> dict[str, Any] | None:
    """The emergency part of GET /api/v1/broadcasts/{id} (None for other broadcasts), over the
    stations of `communes` (the caller's area; None: every station)."""
    em = session.get(EmergencyBroadcast, bc.id)
    if em is None:
        return None
    sender = session.get(User, bc.created_by) if bc.created_by else None
    return {
        "emergency": {
            "text": em.text, "repeat": em.repeat, "schedule_id": em.schedule_id,
            "led_message_id": em.led_message_id, "volume": em.volume, "topics": em.topics,
            "lead_ms": em.lead_ms, "lead_basis": em.lead_basis, "status": em.status,
            "sent_by": sender.username if sender else None, "requested_at": _iso(em.requested_at),
            "published_at": _iso(em.published_at), "publish_ms": em.publish_ms,
            "broker_ack_ms": em.broker_ack_ms, "inline_bytes": em.inline_bytes,
            "cancelled_at": _iso(em.cancelled_at),
        },
        **stations_part(session, bc, communes),
    }  # fmt: skip


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None
