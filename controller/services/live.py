"""Streamed broadcasts (docs/live.md): live voice from the panel, and what relays share with it.

A streamed broadcast is a `broadcasts` row with status "stream" (so deliveries, acks and
the play log work as for any bulletin; the bulletin code paths skip it) plus a
`live_streams` row. `horizon_items` turns them into signed ScheduleItems carrying a
StreamRef; `LiveHub` fans the operator's audio out to every station's HTTP stream.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import (
    Action,
    area_names,
    can,
    communes_of_broadcasts,
    outside_scope,
    require_targets_in_scope,
)
from controller.db.models import Broadcast, Delivery, Device, Media, User
from controller.db.models_live import LiveStream
from controller.db.statuses import BroadcastStatus, DeviceKind, LiveStatus, StreamFallback, StreamKind
from controller.schemas.live import LiveCreate
from controller.services import approval, audit, dispatch, policy
from controller.services.broadcasts import item_id_for
from controller.services.recurrence import Occurrence
from controller.services.targets import Targets, resolve, stored
from protocol.messages import MediaRef, Priority, ScheduleItem, StreamRef

log = logging.getLogger(__name__)

STREAM_STATUS = BroadcastStatus.STREAM  # Broadcast.status of streamed broadcasts (bulletin code ignores it)
LIVE_FORMAT = "s16le"  # the live wire format: S16LE mono 16 kHz, browser to station unchanged
LIVE_RATE = 16000
LIVE_BYTES_PER_S = 2 * LIVE_RATE
# Stations switch their amplifier on 1.5 s ahead; the desired state takes well under 0.5 s.
LIVE_LEAD = timedelta(seconds=2)
LIVE_DEAD_AIR_S = 10.0
KEEP_PAST = timedelta(minutes=10)
# A station that falls further behind than this loses its oldest audio (latency stays bounded).
LISTENER_MAX_BACKLOG_S = 2.0
MAX_FRAME_BYTES = 64 * 1024


# -- records shared by live voice and relays --------------------------------------------------------
def create_stream(
    session: Session, *, kind: str, title: str, targets: Targets, priority: Priority,
    start_at: datetime, end_at: datetime, user: User | None, token: str | None = None,
    source_url: str | None = None, fmt: str | None = None, fallback: str = StreamFallback.SILENCE,
    filler: list[str] | None = None, dead_air_s: float = LIVE_DEAD_AIR_S,
    override_reason: str | None = None,
) -> tuple[LiveStream, list[int]]:  # fmt: skip
    """Write the broadcast, its deliveries and the stream row, and queue its stations' dispatch.

    With a `user`, the bulletin rules apply (services.broadcasts.create): commune policy, then
    approval. A relay the user may not approve is a draft (both rows "draft") until an approver
    approves it; live voice cannot wait, so it is refused instead. Emergency is exempt."""
    if user is not None:
        require_targets_in_scope(session, user, targets, kind=DeviceKind.SPEAKER)
    devices = resolve(session, targets, kind=DeviceKind.SPEAKER)
    if not devices:
        raise UserError(422, "broadcast.no_targets")
    user_id = user.id if user else None
    status, outcome = STREAM_STATUS, {"status": "unchecked"}
    if user is not None:
        status, outcome = _clear_to_air(session, user, kind, devices, priority, start_at, end_at,
                                        override_reason)  # fmt: skip
    bc = Broadcast(
        title=title, status=status, media=[], priority=priority.value, start_at=start_at,
        duration_s=(end_at - start_at).total_seconds(), targets=stored(session, targets),
        created_by=user_id,
    )  # fmt: skip
    session.add(bc)
    session.flush()
    for d in devices:
        session.add(Delivery(broadcast_id=bc.id, device_id=d.id, item_id=item_id_for(bc.id)))
    ls = LiveStream(
        broadcast_id=bc.id, kind=kind, token=token, source_url=source_url, format=fmt, fallback=fallback,
        filler=list(filler or []), dead_air_s=dead_air_s, start_at=start_at, end_at=end_at,
        status=LiveStatus.DRAFT if status == BroadcastStatus.DRAFT else LiveStatus.ACTIVE, created_by=user_id,
    )  # fmt: skip
    session.add(ls)
    session.flush()
    audit.record(session, user_id, f"{kind}.start", "broadcast", bc.id, title=title, targets=bc.targets,
                 priority=priority.value, start_at=start_at.isoformat(), end_at=end_at.isoformat(),
                 source=source_url, stations=len(devices), policy=outcome, status=status)  # fmt: skip
    if outcome.get("status") == "override":
        audit.record(session, user_id, "policy.override", "broadcast", bc.id, reason=override_reason,
                     rule=outcome.get("rule"))  # fmt: skip
    dispatch.stations_changed(session, [d.id for d in devices])
    return ls, [d.id for d in devices]


def _clear_to_air(
    session: Session, user: User, kind: str, devices: list[Device], priority: Priority,
    start_at: datetime, end_at: datetime, override_reason: str | None,
) -> tuple[BroadcastStatus, dict[str, Any]]:  # fmt: skip
    """The broadcast status and policy outcome, as a bulletin gets them (issue 16 item 6)."""
    communes = sorted({d.commune_id for d in devices})
    occurrence = Occurrence(start_at, (end_at - start_at).total_seconds())
    outcome = policy.enforce(session, user, communes, [occurrence], priority, override_reason)
    if priority is Priority.EMERGENCY or approval.can_approve(session, user, communes):
        return STREAM_STATUS, outcome
    if kind == StreamKind.LIVE:
        raise UserError(403, "live.needs_approval")
    return BroadcastStatus.DRAFT, outcome


def require_may_manage(session: Session, ls: LiveStream, user: User | None) -> None:
    """Read, speak into, end or cancel a stream: its creator, or a sender whose area covers every
    station it reaches (one check for the API, the panel and the WebSocket). None: the system."""
    if user is None:
        return
    if not can(user, Action.BROADCAST_SEND):
        raise UserError(403, "auth.forbidden")
    if ls.created_by is not None and ls.created_by == user.id:
        return
    reached = communes_of_broadcasts(session, [ls.broadcast_id])[ls.broadcast_id]
    outside = outside_scope(session, user, reached)
    if outside:
        raise UserError(403, f"{ls.kind}.forbidden", id=ls.id, names=area_names(session, outside))


def managed_stream(session: Session, stream_id: int, kind: str, user: User | None) -> LiveStream:
    """The stream, if `user` may manage it (404 when it does not exist, 403 when not theirs)."""
    ls = get_stream(session, stream_id, kind)
    require_may_manage(session, ls, user)
    return ls


def stream_ref(ls: LiveStream, filler: dict[str, Media]) -> StreamRef:
    if ls.kind == StreamKind.LIVE:
        return StreamRef(url=f"/api/v1/live/{ls.id}/stream", token=ls.token, kind=StreamKind.LIVE,
                         format=LIVE_FORMAT, rate=LIVE_RATE, fallback=StreamFallback.SILENCE,
                         dead_air_s=ls.dead_air_s)  # fmt: skip
    refs = [MediaRef(sha256=s, size=filler[s].size, duration_s=filler[s].duration_s)
            for s in ls.filler or [] if s in filler]  # fmt: skip
    return StreamRef(url=ls.source_url or "", kind=StreamKind.RELAY, format=ls.format,
                     fallback=(StreamFallback.FILLER if refs and ls.fallback == StreamFallback.FILLER
                               else StreamFallback.SILENCE),
                     filler=refs, dead_air_s=ls.dead_air_s)  # fmt: skip


def horizon_items(
    session: Session, devices: list[Device], *, now: datetime, horizon: timedelta
) -> dict[int, list[ScheduleItem]]:
    """Streamed items of these stations whose window is open or recent (desired_state.build)."""
    ids = [d.id for d in devices if d.kind == DeviceKind.SPEAKER]
    out: dict[int, list[ScheduleItem]] = {}
    if not ids:
        return out
    rows = session.execute(
        select(Delivery, Broadcast, LiveStream)
        .join(Broadcast, Delivery.broadcast_id == Broadcast.id)
        .join(LiveStream, LiveStream.broadcast_id == Broadcast.id)
        .where(Delivery.device_id.in_(ids), Broadcast.status == STREAM_STATUS,
               LiveStream.end_at >= now - KEEP_PAST, LiveStream.start_at <= now + horizon)
    ).all()  # fmt: skip
    shas = {s for _, _, ls in rows for s in ls.filler or []}
    media = {m.sha256: m for m in session.scalars(select(Media).where(Media.sha256.in_(shas)))}
    for delivery, bc, ls in rows:
        out.setdefault(delivery.device_id, []).append(ScheduleItem(
            item_id=delivery.item_id, broadcast_id=bc.id, title=bc.title, start_at=ls.start_at,
            end_at=ls.end_at, priority=Priority(bc.priority), stream=stream_ref(ls, media),
        ))  # fmt: skip
        if delivery.sent_at is None:
            delivery.sent_at = now
    return out


def get_stream(session: Session, stream_id: int, kind: str) -> LiveStream:
    ls = session.get(LiveStream, stream_id)
    if ls is None or ls.kind != kind:
        raise NotFound(f"{kind}.not_found", id=stream_id)
    return ls


# -- live voice --------------------------------------------------------------------------------------
def create_live(
    session: Session, req: LiveCreate, user: User, *, max_minutes: int, now: datetime | None = None
) -> tuple[LiveStream, list[int]]:
    now = now or datetime.now(UTC)
    if req.priority.rank < Priority.NORMAL.rank:
        raise UserError(422, "live.bad_priority")
    if req.priority is Priority.EMERGENCY and not can(user, Action.BROADCAST_EMERGENCY):
        raise UserError(403, "auth.forbidden")
    start_at = now + LIVE_LEAD
    minutes = min(req.max_minutes or max_minutes, max_minutes)
    return create_stream(
        session, kind=StreamKind.LIVE, title=req.title, targets=req.targets, priority=req.priority,
        start_at=start_at, end_at=start_at + timedelta(minutes=minutes), user=user,
        token=secrets.token_urlsafe(24), fmt=LIVE_FORMAT, override_reason=req.override_reason,
    )  # fmt: skip


def end_live(
    session: Session, stream_id: int, user: User | None, *, now: datetime | None = None
) -> LiveStream:
    """Mark it ended; the hub then closes every station's stream, so each reports 'played'.

    The item stays in the stations' desired state (its end_at is now): nothing is re-published,
    so no station is cut off before it has played what it had buffered.
    """
    now = now or datetime.now(UTC)
    ls = managed_stream(session, stream_id, StreamKind.LIVE, user)
    if ls.status == LiveStatus.ACTIVE:
        ls.status, ls.ended_at = LiveStatus.ENDED, now
        ls.end_at = max(now, ls.start_at + timedelta(seconds=1))
        audit.record(session, user.id if user else None, "live.end", "broadcast", ls.broadcast_id)
    return ls


def live_json(ls: LiveStream, channel: Channel | None = None) -> dict[str, Any]:
    return {
        **ls.as_dict(),
        "item_id": item_id_for(ls.broadcast_id),
        "ws_path": f"/api/v1/live/{ls.id}/ws",
        "format": {"encoding": "s16le", "rate": LIVE_RATE, "channels": 1},
        "listeners": channel.listener_count if channel else 0,
        "operator_connected": bool(channel and channel.operators),
    }


def token_ok(ls: LiveStream, token: str | None) -> bool:
    return bool(ls.token) and bool(token) and hmac.compare_digest(str(ls.token), str(token))


# -- the fan-out --------------------------------------------------------------------------------------
@dataclass
class Listener:
    """One station's HTTP stream: chunks wait here until its response takes them."""

    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    backlog: int = 0
    sent: int = 0
    dropped: int = 0

    def offer(self, chunk: bytes) -> None:
        self.queue.put_nowait(chunk)
        self.backlog += len(chunk)
        while self.backlog > LISTENER_MAX_BACKLOG_S * LIVE_BYTES_PER_S:
            old = self.queue.get_nowait()
            if old is None:  # keep the end marker
                self.queue.put_nowait(None)
                break
            self.backlog -= len(old)
            self.dropped += len(old)


@dataclass
class Channel:
    stream_id: int
    end_at: float  # unix time: the stream closes by itself then
    _by_id: dict[int, Listener] = field(default_factory=dict)
    operators: int = 0
    received: int = 0
    ended: bool = False

    @property
    def listener_count(self) -> int:
        return len(self._by_id)

    def publish(self, chunk: bytes) -> int:
        """Hand one chunk of the operator's audio to every station; returns how many got it."""
        self.received += len(chunk)
        for listener in self._by_id.values():
            listener.offer(chunk)
        return len(self._by_id)

    def subscribe(self) -> Listener:
        listener = Listener()
        self._by_id[id(listener)] = listener
        if self.ended:
            listener.queue.put_nowait(None)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self._by_id.pop(id(listener), None)

    def end(self) -> None:
        self.ended = True
        for listener in self._by_id.values():
            listener.queue.put_nowait(None)

    async def listen(self, listener: Listener) -> AsyncIterator[bytes]:
        """The body of one station's stream: chunks as they come, until the end or end_at."""
        try:
            while True:
                remaining = self.end_at - time.time()
                if remaining <= 0:
                    return
                try:
                    chunk = await asyncio.wait_for(listener.queue.get(), remaining)
                except TimeoutError:
                    return
                if chunk is None:
                    return
                listener.backlog -= len(chunk)
                listener.sent += len(chunk)
                yield chunk
        finally:
            self.unsubscribe(listener)


class LiveHub:
    """Live channels of this controller process (a live session lives on one replica: docs/live.md)."""

    def __init__(self) -> None:
        self._channels: dict[int, Channel] = {}

    def get(self, stream_id: int) -> Channel | None:
        return self._channels.get(stream_id)

    def open(self, ls: LiveStream) -> Channel:
        """The channel of an active session (made on first use, e.g. after a controller restart)."""
        now = time.time()
        for gone in [c for c in self._channels.values()
                     if (c.ended or c.end_at < now) and not c.listener_count and not c.operators]:
            del self._channels[gone.stream_id]  # finished sessions do not pile up  # fmt: skip
        channel = self._channels.get(ls.id)
        if channel is None:
            channel = self._channels[ls.id] = Channel(ls.id, ls.end_at.timestamp())
            if ls.status != LiveStatus.ACTIVE:
                channel.ended = True
        return channel

    def end(self, stream_id: int) -> None:
        channel = self._channels.get(stream_id)
        if channel is not None:
            channel.end()


def hub_of(state: Any) -> LiveHub:
    """The app's hub (kept on app.state, made on first use)."""
    hub = getattr(state, "live_hub", None)
    if hub is None:
        hub = LiveHub()
        state.live_hub = hub
    return hub
