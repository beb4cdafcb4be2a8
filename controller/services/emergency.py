"""Emergency broadcasts (Thông tư 39 "khẩn cấp"): one signed PLAY per group topic, now.

`start` and `stop` are the two entry points (the API route and the CAP importer call them,
possibly concurrently). An emergency is a Broadcast with per-station Delivery rows like any
other (acks and proof of play are tracked per station), but it does not wait for the
desired-state dispatcher: the controller signs one PLAY for each group topic that covers the
targets (all / commune / group of communes; single stations and tags fall back to per-device command
topics) and every station starts at the same instant, `lead` after the request. The LED
boards of the same areas mirror the text; a repeat rule becomes an emergency-priority
schedule in the stations' desired-state horizon (it keeps playing through outages). Cancel
sends one CANCEL per group topic, ends the schedule and the LED mirror. docs/emergency.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, insert, select, true, update
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, can, outside_scope
from controller.db.models import Area, Broadcast, Delivery, Device, DeviceEvent, Media, PlayLog, User
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.models_led import LedMessageRow
from controller.db.models_schedules import Schedule
from controller.db.statuses import (
    AIRED_PLAY,
    BroadcastStatus,
    DeliveryState,
    DeviceKind,
    EmergencyStatus,
    LedMessageStatus,
    PlayStatus,
    ScheduleStatus,
)
from controller.schemas.broadcasts import BroadcastCreate
from controller.services import approval, audit, dispatch, led, media_library, policy, recurrence
from controller.services.broadcasts import check_emergency_fields, item_id_for, one_off_item
from controller.services.ingest import unreadable_command
from controller.services.schedule_limits import Limits, check_rule, check_rule_text
from controller.services.targets import Targets, commune_ids, normalized
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.limits import INLINE_ITEM_MAX_BYTES
from protocol.messages import (
    CancelCommand,
    CommandKind,
    EventKind,
    MediaRef,
    PlayCommand,
    Priority,
    ScheduleItem,
)

if TYPE_CHECKING:
    from controller.core.config import Settings
    from controller.db.session import Database
    from controller.services.media import MediaStore
    from controller.services.station_commands import CommandBus
    from controller.services.tts import TtsService
    from protocol.signing import Signer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmergencyDeps:
    """What starting and stopping an emergency uses, and nothing else (built by the Runtime).

    `db`: the late ack re-check runs in its own session. `write_lock`: the ingest's, so this
    process's bulk writers take turns on SQLite (see Ingest.write_lock).
    """

    settings: Settings
    signer: Signer
    bus: CommandBus
    media: MediaStore
    tts: TtsService
    db: Database
    write_lock: asyncio.Lock

# How many earlier emergencies the lead is learnt from.
LEAD_HISTORY = 5
# Stations that must have reported readiness (or, failing that, acked) for an emergency to teach
# it; an emergency to fewer stations teaches one no bigger than itself once all of them reported
# (a commune with three clusters, a one-station bench: `_enough_samples`).
LEAD_MIN_SAMPLES = 10
# A signed PLAY is valid this long after its start (a station that gets it later rejects
# it as expired and is shown so; the desired state still carries the item).
PLAY_TTL_AFTER_START = timedelta(seconds=60)
# Acks that raced the Delivery rows are looked for again this long after the publish.
ACK_RECHECK_S = 5.0
# Emergencies this recent and at least RECOVER_AFTER old without Delivery rows get them
# (`recover_deliveries`, every RECOVER_EVERY_S).
RECOVER_WINDOW = timedelta(hours=2)
RECOVER_AFTER = timedelta(seconds=20)
RECOVER_EVERY_S = 10.0
# The audio counts as already on the stations when this share of them played it before.
HELD_SHARE = 0.99
HELD_ONE_BY_ONE = 3  # the newest broadcasts of a clip checked alone before all of them together
# Audio inside the PLAY on the wire: base64 in the envelope JSON, base64url around that.
INLINE_WIRE_FACTOR = 16 / 9


# -- fan-out planning ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Station:
    id: int
    uid: str
    commune_id: int


@dataclass
class Fanout:
    """The minimal set of topics that reaches exactly the targeted stations, and how many of
    them each commune has. The stations themselves are loaded with `stations()` after the
    publish: 10,000 rows must not stand between the request and the first word on air."""

    topics: list[str] = field(default_factory=list)
    per_commune: dict[int, int] = field(default_factory=dict)  # commune id -> targeted stations
    group_clause: ColumnElement[bool] | None = None  # the stations the group topics reach
    singles: list[Station] = field(default_factory=list)  # stations addressed on their own topic
    _loaded: list[Station] | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return sum(self.per_commune.values())

    @property
    def communes(self) -> list[int]:
        return sorted(self.per_commune)

    def stations(self, session: Session) -> list[Station]:
        """Loaded once: a repeat emergency needs them before the publish and again after it."""
        if self._loaded is None:
            found: dict[int, Station] = {st.id: st for st in self.singles}
            if self.group_clause is not None:
                for i, u, c in session.execute(
                        select(Device.id, Device.uid, Device.commune_id).where(_SPEAKERS, self.group_clause)):
                    found[i] = Station(i, u, c)
            self._loaded = [found[i] for i in sorted(found)]
        return self._loaded


_SPEAKERS = and_(Device.kind == DeviceKind.SPEAKER, Device.retired_at.is_(None))


def plan(session: Session, targets: Targets) -> Fanout:
    """Map targets to group topics: all -> grp/all; commune -> grp/commune/{id}; a group of
    communes (docs/areas.md) -> one grp/commune/{id} per member commune (every station already
    listens there, so no station needs new subscriptions or re-enrollment); single stations and
    tags -> their own cmd topic unless a commune topic already covers them.

    Counts per commune (one GROUP BY), not station rows: a 10,000-station emergency plans in
    milliseconds.
    """
    out = Fanout()
    covered: set[int] = set()
    if targets.all:
        out.topics = [topics.group_cmd("all")]
        out.group_clause = true()
    else:
        for commune in sorted(commune_ids(session, targets)):
            out.topics.append(topics.group_cmd("commune", commune))
            covered.add(commune)
        if covered:
            out.group_clause = Device.commune_id.in_(covered)
        singles: dict[int, Station] = {}
        base = select(Device.id, Device.uid, Device.commune_id, Device.tags).where(_SPEAKERS)
        if targets.devices:
            for i, u, c, _ in session.execute(base.where(Device.id.in_(targets.devices))):
                if c not in covered:
                    singles[i] = Station(i, u, c)
        if targets.tags:
            wanted = set(targets.tags)
            for i, u, c, tags in session.execute(base):
                if c not in covered and wanted.intersection(tags or []):
                    singles[i] = Station(i, u, c)
        out.singles = [singles[i] for i in sorted(singles)]
        out.topics += [topics.cmd(st.uid) for st in out.singles]
    if out.group_clause is not None:
        out.per_commune = {c: n for c, n in session.execute(
            select(Device.commune_id, func.count()).where(_SPEAKERS, out.group_clause)
            .group_by(Device.commune_id))}
    for st in out.singles:
        out.per_commune[st.commune_id] = out.per_commune.get(st.commune_id, 0) + 1
    return out


# -- the synchronized start ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Lead:
    seconds: float
    basis: str


def _default_delivery(cfg: Any, stations: int) -> float:
    """Publish -> ack before any emergency was measured: a base plus a little per station."""
    return float(cfg.emergency_default_delivery_s + stations * cfg.emergency_default_per_station_ms / 1000)


def _enough_samples(learnt_from: int, stations: int) -> int:
    """Reports an emergency to `learnt_from` stations needs before it teaches the lead of one to
    `stations`: LEAD_MIN_SAMPLES, or all of them when it had fewer and the new one is no bigger
    (one slow station of three must not teach a province-wide lead scaled up a thousandfold)."""
    if learnt_from < LEAD_MIN_SAMPLES and stations <= learnt_from:
        return max(1, learnt_from)
    return LEAD_MIN_SAMPLES


def _p99_after(session: Session, bc_id: int, column: Any, count: int, since: datetime) -> float:
    """Seconds from `since` to the p99 of this emergency's `column` (acked_at / ready_at), picked
    by the database (10,000 timestamps are not worth loading here). Counted from the latest, so
    the database keeps the top 1 % in its sorter rather than sorting every row (10,000 stations
    on SQLite: 5.8 -> 1.3 ms, before the PLAY leaves)."""
    from_latest = count - math.ceil(0.99 * count)  # ascending position ceil(0.99 n) - 1
    p99_at = session.scalar(
        select(column).where(Delivery.broadcast_id == bc_id, column.is_not(None))
        .order_by(column.desc()).offset(from_latest).limit(1))
    return max(0.0, (p99_at - since).total_seconds()) if p99_at is not None else 0.0


def choose_lead(session: Session, deps: EmergencyDeps, media: list[Media], stations: int, *,
                fresh: list[Media] | None = None, inline: dict[str, str] | None = None) -> Lead:
    """start_at = now + lead: long enough that (almost) every station has the PLAY, the audio
    and its amplifier on, short enough that the emergency is on air at once.

    lead = p99(publish -> ready) of the last emergency with readiness reports (`Delivery.ready_at`:
           audio verified and decoded, relay on; scaled up to a bigger fan-out), else
           p99(request -> ack) of the last one with acks (agents older than readiness), until
           there is one: 250 ms + 0.5 ms per station
         + media fetch estimate, 0 when the stations already hold the audio
           (stations x bytes / throughput + stations / request rate)
           or when it travels inside the PLAY (`inline`, sha -> base64): instead the broker's
           fan-out of the bigger PLAY (stations x its extra bytes on the wire, beyond those of
           the emergency the delivery was learnt from, / emergency_inline_bytes_per_s)
         + a margin for preempting what plays and starting the output,
    clamped to [min, max]. A fixed `emergency_lead_s` overrides it. `fresh`: the media the
    stations do not hold yet, when the caller has found them already (`fresh_media`).
    """
    cfg = deps.settings
    if cfg.emergency_lead_s is not None:
        return Lead(cfg.emergency_lead_s, "fixed (emergency_lead_s)")
    delivery, basis = _default_delivery(cfg, stations), "default delivery"
    learnt_inline = 0  # audio bytes inside the PLAY whose acks / readiness taught `delivery`
    rows = session.execute(
        select(EmergencyBroadcast.broadcast_id, EmergencyBroadcast.requested_at,
               EmergencyBroadcast.published_at, EmergencyBroadcast.inline_bytes)
        .where(EmergencyBroadcast.published_at.is_not(None))
        .order_by(EmergencyBroadcast.broadcast_id.desc()).limit(LEAD_HISTORY)
    ).all()
    for bc_id, requested, published, learnt_bytes in rows:  # the most recent emergency with enough data
        total, acked, ready = session.execute(
            select(func.count(), func.count(Delivery.acked_at), func.count(Delivery.ready_at))
            .where(Delivery.broadcast_id == bc_id)).one()
        enough = _enough_samples(total, stations)
        if ready >= enough:
            # Readiness: the PLAY in, its audio verified and decoded, the relay on — the moment each
            # station could have sounded it (Event.ready_at). Counted from the publish, the same
            # instant start_at is counted from.
            p99 = _p99_after(session, bc_id, Delivery.ready_at, ready, published)
            delivery = p99 * max(1.0, stations / total)  # a bigger fan-out takes longer
            basis = f"p99 ready {p99 * 1000:.0f} ms of emergency {bc_id} ({ready}/{total} stations)"
        elif acked >= enough:  # stations on an agent older than readiness: their acks
            # From the request, as start_at is counted from it: controller time + fan-out + handling.
            p99 = _p99_after(session, bc_id, Delivery.acked_at, acked, requested)
            delivery = p99 * max(1.0, stations / total)
            basis = f"p99 ack {p99 * 1000:.0f} ms of emergency {bc_id} ({total} stations)"
        else:
            continue
        learnt_inline = learnt_bytes or 0
        break
    basis = f"{basis} {delivery * 1000:.0f} ms"
    if fresh is None:
        fresh = fresh_media(session, media, stations)
    inline = inline or {}
    fetched = [m for m in fresh if m.sha256 not in inline]
    fetch = 0.0
    if fetched:
        fetch = (stations * sum(m.size for m in fetched) / cfg.emergency_media_bytes_per_s
                 + stations / cfg.emergency_media_requests_per_s)
    inline_bytes = sum({m.sha256: m.size for m in fresh if m.sha256 in inline}.values())
    extra = max(0, inline_bytes - learnt_inline) * INLINE_WIRE_FACTOR
    carried = stations * extra / cfg.emergency_inline_bytes_per_s
    lead = delivery + fetch + carried + cfg.emergency_lead_margin_s
    lead = min(max(lead, cfg.emergency_lead_min_s), cfg.emergency_lead_max_s)
    how = []
    if inline:
        how.append(f"audio inside the PLAY ({inline_bytes / 1024:.0f} KiB, fan-out {carried * 1000:.0f} ms)")
    if fetched:
        how.append(f"media fetch {fetch * 1000:.0f} ms")
    held = "; ".join(how) or "audio already on the stations"
    return Lead(round(lead, 3), f"{basis}; {held} ({stations} stations)")


def fresh_media(session: Session, media: list[Media], stations: int) -> list[Media]:
    """The media (nearly) all of these stations do not hold yet."""
    return [m for m in media if not _held_by_stations(session, m.sha256, stations)]


def inline_payloads(deps: EmergencyDeps, fresh: list[Media]) -> dict[str, str]:
    """Audio that travels inside the signed PLAY (docs/emergency.md, "Audio inside the PLAY"):
    each fresh clip of at most `emergency_inline_max_bytes` (protocol/limits.py caps it),
    together at most INLINE_ITEM_MAX_BYTES, read from the media store and checked against its
    hash (a store file that no longer matches keeps the HTTP path, where stations refuse it
    too). sha256 -> base64 of the stored file. Held media and bigger clips go by reference."""
    limit = deps.settings.emergency_inline_max_bytes
    out: dict[str, str] = {}
    total = 0
    for m in sorted(fresh, key=lambda m: m.size):  # the most clips within the item's limit
        if m.sha256 in out or m.size > limit or total + m.size > INLINE_ITEM_MAX_BYTES:
            continue
        try:
            data = deps.media.path_for(m.sha256).read_bytes()
        except OSError as exc:
            log.error("media %s not readable for the PLAY (%s): sent by reference", m.sha256[:12], exc)
            continue
        if len(data) != m.size or hashlib.sha256(data).hexdigest() != m.sha256:
            log.error("media %s does not match its hash in the store: sent by reference", m.sha256[:12])
            continue
        out[m.sha256] = base64.b64encode(data).decode("ascii")
        total += m.size
    return out


def _held_by_stations(session: Session, sha: str, stations: int) -> bool:
    """Do (nearly) all the stations already hold this audio? They do if it played on them before
    (a drill, an earlier bulletin): a station's media cache keeps what it verified.

    Newest broadcast first, one at a time: usually one of them aired on (nearly) every station
    and the answer costs one broadcast's rows. Counting the stations of all of them at once
    read every earlier round's rows (10,000 each), and the emergency's request -> publish grew
    with each drill (7 earlier emergencies at 10,000 stations: 18 ms of a 30 ms budget)."""
    recent = session.execute(select(Broadcast.id, Broadcast.media).order_by(Broadcast.id.desc()).limit(500))
    ids = [b for b, m in recent if sha in (m or [])]
    need = math.ceil(HELD_SHARE * stations)
    aired = PlayLog.status.in_((*AIRED_PLAY, PlayStatus.PLAYING))
    for bc_id in ids[:HELD_ONE_BY_ONE]:
        if _stations_that_aired(session, aired, PlayLog.broadcast_id == bc_id) >= need:
            return True
    if len(ids) < 2:
        return False
    return _stations_that_aired(session, aired, PlayLog.broadcast_id.in_(ids)) >= need  # several together


def _stations_that_aired(session: Session, aired: ColumnElement[bool], which: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count(func.distinct(PlayLog.device_id))).where(which, aired)) or 0


# -- start ------------------------------------------------------------------------------------------------
class _Phases:
    """Where request -> publish went (the log line of every emergency; docs/scaling.md)."""

    def __init__(self, t0: float) -> None:
        self._last = t0
        self._ms: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self._ms.append((name, (now - self._last) * 1000))
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {ms:.1f} ms" for name, ms in self._ms)


def check_rights(session: Session, user: User | None, req: BroadcastCreate, fan: Fanout) -> None:
    """Emergencies skip approval, but the sender's role must allow them in every target area.
    `start` checks it for every caller (the use-case has checked the targets before, the CAP
    importer its matched areas): 403 naming the first commune outside the sender's area."""
    if user is None:
        return  # a system caller (CAP importer with its own checks)
    action = Action.BROADCAST_EMERGENCY if req.priority is Priority.EMERGENCY else Action.BROADCAST_SEND
    if not can(user, action):
        raise UserError(403, "auth.forbidden")
    # The user's communes once, not `covers` per target commune: a province operator's warning
    # to its 100 communes spent 18 ms here (two queries a commune) before the PLAY left.
    outside = outside_scope(session, user, fan.communes)
    if outside:
        first = min(outside)
        name = session.scalar(select(Area.name).where(Area.id == first)) or str(first)
        raise UserError(403, "emergency.forbidden_area", area=name)


async def _tts_media(
    deps: EmergencyDeps, session: Session, text: str, voice: str, user: User | None
) -> Media:
    """No recording given: the LED text is read out (Vietnamese TTS), stored like an upload."""
    from controller.services.media import record_speech

    service = deps.tts
    service.validate(text, voice, 1.0)
    name = f"Khẩn cấp (TTS {voice}): {' '.join(text.split())[:80]}"
    return await record_speech(session, deps.media, service, text, voice, name, user.id if user else None,
                               emergency=True)  # fmt: skip


def _sign(deps: EmergencyDeps, kind: CommandKind, topic: str, body: dict[str, Any], *, now: datetime,
          ttl: timedelta, priority: Priority) -> bytes:
    return _sign_with_id(deps, kind, topic, body, now=now, ttl=ttl, priority=priority)[1]


def _sign_with_id(deps: EmergencyDeps, kind: CommandKind, topic: str, body: dict[str, Any], *, now: datetime,
                  ttl: timedelta, priority: Priority) -> tuple[str, bytes]:
    env = Envelope.new(kind, topics.target_of(topic), body, ttl=ttl, priority=priority, now=now)
    return env.id, SignedMessage.seal(env, deps.signer).to_bytes()


def _record_deliveries(session: Session, bc_id: int, item_id: str, stations: list[Station],
                       sent_at: datetime) -> None:
    """One Delivery row per station (bulk), then the acks that were stored before the rows existed."""
    session.execute(insert(Delivery), [
        {"broadcast_id": bc_id, "device_id": st.id, "item_id": item_id, "state": "pending",
         "sent_at": sent_at} for st in stations])  # fmt: skip
    _apply_early_acks(session, bc_id, item_id)


def _after_publish(db: Database, bc_id: int, item_id: str, fan: Fanout, sent_at: datetime,
                   publish_ms: float, broker_ack_ms: float | None, inline: bool = False) -> None:
    with db.session() as session:
        _record_deliveries(session, bc_id, item_id, fan.stations(session), sent_at)
        em = session.get(EmergencyBroadcast, bc_id)
        if em is not None:
            em.published_at, em.publish_ms, em.broker_ack_ms = sent_at, publish_ms, broker_ack_ms
        if broker_ack_ms is None:  # the PLAY may not have left: the desired state carries it
            dispatch.stations_changed(session, [st.id for st in fan.stations(session)])
        elif inline:
            _resend_to_unreadable(session, bc_id, sent_at)
        session.commit()


def _resend_to_unreadable(session: Session, bc_id: int, sent_at: datetime) -> None:
    """Stations on an agent older than audio inside the PLAY refuse it as `malformed`; the ingest
    then sends their desired state (ingest.unreadable_command), which carries the item by
    reference. A refusal stored before these Delivery rows existed got a desired state without
    the item: send it again now. One probe per station through the (device_id, ts) index."""
    since = sent_at - timedelta(seconds=5)  # the stations' clocks, not ours
    refused = (select(DeviceEvent.id)
               .where(DeviceEvent.device_id == Delivery.device_id, DeviceEvent.ts >= since,
                      DeviceEvent.kind == EventKind.REJECTED.value).exists())  # fmt: skip
    devices = list(session.scalars(select(Delivery.device_id).where(Delivery.broadcast_id == bc_id, refused)))
    if not devices:
        return
    unreadable = {d for d, body in session.execute(
        select(DeviceEvent.device_id, DeviceEvent.body)
        .where(DeviceEvent.device_id.in_(devices), DeviceEvent.ts >= since,
               DeviceEvent.kind == EventKind.REJECTED.value))
        if unreadable_command((body or {}).get("reason"), (body or {}).get("detail"))}  # fmt: skip
    if unreadable:
        log.warning("emergency %s: %d station(s) could not read the PLAY (an agent older than audio "
                    "inside the PLAY?): their desired state carries it", bc_id, len(unreadable))
        dispatch.stations_changed(session, unreadable)


def _apply_early_acks(session: Session, bc_id: int, item_id: str) -> int:
    """Mark the still-pending deliveries whose station's ack is already stored: one correlated
    UPDATE (each station's events found through the (device_id, ts) index), not an ORM object
    per row — at 10,000 stations that loop held the controller's event loop for seconds."""
    first_ack = (select(func.min(DeviceEvent.ts))
                 .where(DeviceEvent.device_id == Delivery.device_id, DeviceEvent.item_id == item_id,
                        DeviceEvent.kind == EventKind.ACK.value)
                 .scalar_subquery())  # fmt: skip
    result = session.execute(
        update(Delivery)
        .where(Delivery.broadcast_id == bc_id, Delivery.state == DeliveryState.PENDING,
               first_ack.is_not(None))
        .values(state=DeliveryState.ACKED, acked_at=first_ack)
        .execution_options(synchronize_session=False))  # fmt: skip
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _recheck_acks(deps: EmergencyDeps, bc_id: int, item_id: str) -> None:
    try:
        with deps.db.session() as s:
            if _apply_early_acks(s, bc_id, item_id):
                s.commit()
    except Exception:
        log.exception("re-checking the acks of emergency %s failed", bc_id)


async def start(deps: EmergencyDeps, session: Session, req: BroadcastCreate, user: User | None) -> Started:
    """Validate; record the broadcast, LED mirror, repeat schedule and audit; commit; hand one
    signed PLAY per group topic to the broker connection; answer. The broker's PUBACK and the
    per-station Delivery rows follow after the answer (`_after_answer`): 10,000 rows never
    delay the first word on air nor the operator's confirmation (issue 21, docs/emergency.md)."""
    t0 = time.monotonic()
    now = datetime.now(UTC)
    if req.priority not in (Priority.EMERGENCY, Priority.PRIORITY):
        check_emergency_fields(req)  # normal broadcasts with text/repeat: the clear 422
        raise UserError(422, "request.invalid")
    phases = _Phases(t0)
    req = req.model_copy(update={"targets": normalized(session, req.targets)})  # ids only, as stored
    fan = plan(session, req.targets)
    if not fan.count:
        raise UserError(422, "broadcast.no_targets")
    check_rights(session, user, req, fan)
    phases.mark("plan")
    communes = fan.communes
    if req.priority is Priority.PRIORITY and user is not None and not approval.can_approve(
            session, user, communes):
        raise UserError(403, "emergency.priority_needs_approval")
    playlist = req.playlist()
    if not playlist:
        if not req.text:
            raise UserError(422, "emergency.no_audio")
        playlist = [(await _tts_media(deps, session, req.text, req.voice, user)).sha256]
    media = {m.sha256: m for m in session.scalars(select(Media).where(Media.sha256.in_(playlist)))}
    for sha in playlist:
        if sha not in media:
            raise NotFound("media.not_found", sha256=sha)
    media_library.check_usable(list(media.values()))
    rec = None
    if req.repeat:  # validate before anything is stored or sent
        check_rule_text(req.repeat)
        rec = recurrence.Recurrence.of(req.repeat, now, None, [], deps.settings.timezone)
        check_rule(rec.rule, req.repeat, Limits.of(deps.settings))  # the parsed rule (docs/security.md)
    phases.mark("media")
    listed = [media[s] for s in playlist]
    fresh = fresh_media(session, listed, fan.count)
    inline = inline_payloads(deps, fresh)  # the PLAY carries fresh short clips (never a desired state)
    lead = choose_lead(session, deps, listed, fan.count, fresh=fresh, inline=inline)
    phases.mark("lead")
    now = datetime.now(UTC)  # again: text-to-speech may have taken seconds; the lead counts from here
    start_at = now + timedelta(seconds=lead.seconds)
    if req.start_at is not None and req.start_at.astimezone(UTC) > start_at:
        start_at = req.start_at.astimezone(UTC)  # an emergency may be set for a later instant
    duration_s = sum(media[s].duration_s for s in playlist)
    outcome: dict[str, Any] = {"status": "exempt", "reason": "emergency"}
    if req.priority is Priority.PRIORITY and user is not None:  # priority keeps the commune's policy
        outcome = policy.enforce(session, user, communes, [recurrence.Occurrence(start_at, duration_s)],
                                 req.priority, req.override_reason)
    uid = user.id if user else None
    bc = Broadcast(title=req.title, status=BroadcastStatus.SCHEDULED, media=playlist,
                   priority=req.priority.value, start_at=start_at, duration_s=duration_s,
                   targets=req.targets.model_dump(exclude_defaults=True), created_by=uid)
    session.add(bc)
    session.flush()
    item_id = item_id_for(bc.id)
    volume = deps.settings.emergency_volume
    em = EmergencyBroadcast(broadcast_id=bc.id, text=req.text, voice=req.voice if req.text else None,
                            repeat=req.repeat, volume=volume, topics=fan.topics,
                            lead_ms=round(lead.seconds * 1000, 1), lead_basis=lead.basis[:200],
                            requested_at=now, status=EmergencyStatus.ACTIVE,
                            inline_bytes=sum(media[s].size for s in inline) or None)
    boards: list[int] = []
    board_text = req.led_text or req.text  # a preset's short LED line, else the read-out text
    if board_text:
        boards = led.mirror_emergency_text(session, req.targets, board_text, None, user_id=uid, now=now)
        if boards:
            em.led_message_id = session.scalar(
                select(LedMessageRow.id).where(LedMessageRow.source == "emergency",
                                               LedMessageRow.text == board_text)
                .order_by(LedMessageRow.id.desc()).limit(1))
    if rec is not None and req.repeat:
        sc = _repeat_schedule(req, rec, playlist, duration_s, start_at, uid)
        session.add(sc)
        session.flush()
        em.schedule_id = sc.id
        audit.record(session, uid, "schedule.create", "schedule", sc.id, title=sc.title, rrule=sc.rrule,
                     dtstart=sc.dtstart, targets=sc.targets, priority=sc.priority,
                     emergency_broadcast=bc.id)
    session.add(em)
    audit.record(session, uid, "broadcast.emergency", "broadcast", bc.id, title=req.title,
                 targets=bc.targets, text=req.text, repeat=req.repeat, priority=req.priority.value,
                 stations=fan.count, topics=fan.topics, start_at=start_at.isoformat(),
                 lead_ms=em.lead_ms, lead_basis=lead.basis, policy=outcome, led_boards=len(boards))
    if boards:
        dispatch.stations_changed(session, boards)
    if em.schedule_id is not None:  # the repeats live in every station's desired-state horizon
        dispatch.stations_changed(session, [st.id for st in fan.stations(session)])
    item = ScheduleItem(
        item_id=item_id, broadcast_id=bc.id, title=req.title, start_at=start_at, priority=req.priority,
        volume=volume,
        media=[MediaRef(sha256=s, size=media[s].size, duration_s=media[s].duration_s,
                        inline=inline.get(s) if s not in playlist[:i] else None)  # a clip twice: once
               for i, s in enumerate(playlist)])
    body = PlayCommand(item=item).model_dump(mode="json")
    ttl = (start_at - now) + timedelta(seconds=duration_s) + PLAY_TTL_AFTER_START
    signed = [(t, *_sign_with_id(deps, CommandKind.PLAY, t, body, now=now, ttl=ttl, priority=req.priority))
              for t in fan.topics]
    em.play_ids = [env_id for _, env_id, _ in signed]
    phases.mark("record+sign")
    session.commit()  # small on purpose: the per-station rows are written after the answer
    phases.mark("commit")
    try:
        acked = deps.bus.hand_over([(t, payload) for t, _, payload in signed])
    except ConnectionError as exc:
        log.error("emergency %s: PLAY not sent, broker unreachable: %s", bc.id, exc)
        # The broadcast is stored as 'scheduled': the desired state carries it to every station
        # as soon as the broker is back (late stations report 'missed', never a silent gap).
        stations = fan.stations(session)
        _record_deliveries(session, bc.id, item_id, stations, now)
        dispatch.stations_changed(session, [st.id for st in stations])
        session.commit()
        raise UserError(503, "emergency.broker_down") from None
    publish_ms = round((time.monotonic() - t0) * 1000, 2)  # the PLAYs are in the socket now
    phases.mark("hand-over")
    # Answer first: the broker's PUBACK and the per-station rows follow in the background.
    _in_background(_after_answer(deps, bc.id, item_id, fan, now, t0, publish_ms, acked, phases,
                                 inline=bool(inline)))
    log.info("emergency %s: %d stations on %d topics, start in %.0f ms (%s), answered in %.1f ms (%s)",
             bc.id, fan.count, len(fan.topics), lead.seconds * 1000, lead.basis, publish_ms, phases)
    return Started(bc, fan.count, publish_ms)


@dataclass(frozen=True)
class Started:
    """What the operator is told at once: the broadcast, how many stations it reaches, and how
    long the PLAYs took to leave (the broker's PUBACK and the per-station rows come after)."""

    broadcast: Broadcast
    stations: int
    publish_ms: float


_TASKS: set[asyncio.Task[None]] = set()  # the background work of answered requests (kept referenced)


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def _after_answer(deps: EmergencyDeps, bc_id: int, item_id: str, fan: Fanout, sent_at: datetime,
                        t0: float, publish_ms: float, acked: Awaitable[None], phases: _Phases,
                        inline: bool = False) -> None:
    """After the operator has their answer: the broker's PUBACK, then one Delivery row per station.

    Durable without waiting for it: the broadcast row was committed before the PLAYs left, and a
    controller killed before these rows exist writes them at its next start
    (`recover_deliveries`), with the stations' desired state carrying the broadcast."""
    try:
        broker_ack_ms: float | None = None
        try:
            await acked
            broker_ack_ms = round((time.monotonic() - t0) * 1000, 2)
        except ConnectionError as exc:
            log.error("emergency %s: the broker did not acknowledge the PLAY (%s); the stations' "
                      "desired state carries it", bc_id, exc)
        phases.mark("broker ack")
        async with deps.write_lock:
            # In a worker thread: 10,000 rows written on the event loop kept the controller from
            # reading the very acks the stations were sending meanwhile (they waited for seconds).
            await asyncio.to_thread(_after_publish, deps.db, bc_id, item_id, fan, sent_at,
                                    publish_ms, broker_ack_ms, inline)
        phases.mark("deliveries")
        # An ack stored between the publish and the rows found no Delivery row to mark (and on
        # PostgreSQL one may race the commit): look again once they have all come in.
        loop = asyncio.get_running_loop()
        loop.call_later(ACK_RECHECK_S,
                        lambda: loop.run_in_executor(None, _recheck_acks, deps, bc_id, item_id))
        log.info("emergency %s: after the answer %s", bc_id, phases)
    except Exception:
        log.exception("emergency %s: recording its deliveries failed (written at the next start)", bc_id)


def recover_deliveries(db: Database, now: datetime | None = None) -> int:
    """Emergencies answered by a controller killed before their Delivery rows were written (rows
    are due within a second or so of the answer) get them now, and their stations' desired state
    is sent again: it carries the broadcast, so a station that missed the group PLAY still plays
    it or reports `missed`, never a silent gap. Run every RECOVER_EVERY_S by the leader (the
    runtime). Returns how many emergencies were recovered."""
    now = now or datetime.now(UTC)
    with db.session() as s:
        has_rows = select(Delivery.id).where(Delivery.broadcast_id == Broadcast.id).exists()
        q = (select(Broadcast).join(EmergencyBroadcast, EmergencyBroadcast.broadcast_id == Broadcast.id)
             .where(EmergencyBroadcast.status == EmergencyStatus.ACTIVE,
                    EmergencyBroadcast.requested_at < now - RECOVER_AFTER,
                    Broadcast.start_at > now - RECOVER_WINDOW, ~has_rows))  # fmt: skip
        found = list(s.scalars(q))
        for bc in found:
            stations = plan(s, Targets.model_validate(bc.targets)).stations(s)
            _record_deliveries(s, bc.id, item_id_for(bc.id), stations, now)
            dispatch.stations_changed(s, [st.id for st in stations])
            log.warning("emergency %s: its per-station rows were never written (the controller stopped "
                        "after answering); written now for %d stations", bc.id, len(stations))
        s.commit()
    return len(found)


def _repeat_schedule(req: BroadcastCreate, rec: recurrence.Recurrence, playlist: list[str],
                     duration_s: float, start_at: datetime, user_id: int | None) -> Schedule:
    """The repeat rule as an active schedule anchored at the emergency's own start (local time)."""
    tz = rec.tz
    dtstart = start_at.astimezone(tz).replace(tzinfo=None, microsecond=0)
    return Schedule(
        title=req.title, media=list(playlist), duration_s=duration_s, rrule=(req.repeat or "").strip(),
        dtstart=dtstart.isoformat(), until=None, exdates=[], timezone=str(tz.key),
        targets=req.targets.model_dump(exclude_defaults=True), priority=req.priority.value,
        status=ScheduleStatus.ACTIVE, created_by=user_id, approved_by=user_id, approved_at=datetime.now(UTC),
        override_reason="emergency repeat",
    )  # fmt: skip


# -- stop -------------------------------------------------------------------------------------------------
async def stop(deps: EmergencyDeps, session: Session, broadcast_id: int, user: User | None) -> None:
    """Cancel everywhere (idempotent): one CANCEL per group topic, the repeat schedule ends,
    the LED mirror is withdrawn so boards revert to what they showed before."""
    bc = session.get(Broadcast, broadcast_id)
    if bc is None:
        raise NotFound("broadcast.not_found", id=broadcast_id)
    em = session.get(EmergencyBroadcast, broadcast_id)
    if em is None:
        raise UserError(409, "emergency.not_emergency", id=broadcast_id)
    if em.status == EmergencyStatus.CANCELLED:
        # Already cancelled: say it again on the air (harmless to stations that heard it), so a
        # retry after the broker was down at the first cancel does reach them.
        try:
            _send_cancels(deps, bc.id, _cancels(deps, em, Priority(bc.priority), [item_id_for(bc.id)]))
        except UserError:
            log.warning("emergency %s: repeated cancel not sent (broker down)", bc.id)
        return
    uid = user.id if user else None
    now = datetime.now(UTC)
    bc.status, em.status, em.cancelled_at, em.cancelled_by = "cancelled", "cancelled", now, uid
    item_ids = [item_id_for(bc.id)]
    speakers: list[int] = []
    if em.schedule_id is not None:
        sc = session.get(Schedule, em.schedule_id)
        if sc is not None and sc.status != ScheduleStatus.DELETED:
            # An occurrence on air now is stopped by the CANCEL below; later ones leave the horizon.
            since = now - timedelta(seconds=sc.duration_s + 5)
            for occ in recurrence.occurrences(sc, since, now + timedelta(seconds=5)):
                item_ids.append(recurrence.item_id(sc.id, occ.start))
            sc.status = ScheduleStatus.DELETED
            sc.updated_at = now
            audit.record(session, uid, "schedule.delete", "schedule", sc.id, title=sc.title,
                         emergency_broadcast=bc.id)
            speakers = list(session.scalars(select(Delivery.device_id).where(Delivery.broadcast_id == bc.id)))
    boards: list[int] = []
    if em.led_message_id is not None:
        row = session.get(LedMessageRow, em.led_message_id)
        if row is not None and row.status != LedMessageStatus.CANCELLED:
            boards = led.cancel(session, em.led_message_id, uid)
    audit.record(session, uid, "broadcast.cancel", "broadcast", bc.id, emergency=True, topics=em.topics)
    if boards or speakers:
        dispatch.stations_changed(session, boards + speakers)
    session.commit()
    _send_cancels(deps, bc.id, _cancels(deps, em, Priority(bc.priority), item_ids))


def _send_cancels(deps: EmergencyDeps, bc_id: int, messages: list[tuple[str, bytes]]) -> None:
    """Hand the CANCELs to the broker connection and answer; their PUBACK is awaited after the
    answer. Not connected: 503, the operator retries (a repeated cancel is sent again)."""
    try:
        acked = deps.bus.hand_over(messages)
    except ConnectionError as exc:
        log.error("emergency %s: CANCEL not sent, broker unreachable: %s", bc_id, exc)
        raise UserError(503, "emergency.broker_down") from None
    _in_background(_cancel_acked(bc_id, acked))


async def _cancel_acked(bc_id: int, acked: Awaitable[None]) -> None:
    try:
        await acked
    except ConnectionError as exc:
        log.error("emergency %s: the broker did not acknowledge the CANCEL (%s): cancel again", bc_id, exc)


def _cancels(
    deps: EmergencyDeps, em: EmergencyBroadcast, priority: Priority, item_ids: list[str]
) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC)
    return [(t, _sign(deps, CommandKind.CANCEL, t, CancelCommand(item_id=i).model_dump(mode="json"),
                      now=now, ttl=timedelta(minutes=10), priority=priority))
            for t in em.topics for i in item_ids]


# -- desired-state hook -------------------------------------------------------------------------------
def horizon_items(
    session: Session, devices: list[Device], *, now: datetime, horizon: timedelta
) -> dict[int, list[ScheduleItem]]:
    """Emergencies answered whose per-station rows are not written yet (a horizon source,
    controller/horizon_sources.py). The POST answers first and the Delivery rows follow (within
    a second, or from `recover_deliveries` after a crash); a desired state built in between
    must still carry the emergency, or the station stops it on air as no longer wanted. Built by
    `broadcasts.one_off_item`, as the rows will give it, so the item the station holds does not
    change (and is not re-armed) when they come. Usually finds nothing: one query."""
    has_rows = select(Delivery.id).where(Delivery.broadcast_id == Broadcast.id).exists()
    found = list(session.scalars(
        select(Broadcast).join(EmergencyBroadcast, EmergencyBroadcast.broadcast_id == Broadcast.id)
        .where(EmergencyBroadcast.status == EmergencyStatus.ACTIVE,
               Broadcast.start_at >= now - RECOVER_WINDOW, Broadcast.start_at <= now + horizon, ~has_rows)
        .order_by(Broadcast.start_at)))  # fmt: skip
    items: dict[int, list[ScheduleItem]] = {}
    if not found:
        return items
    wanted = {d.id for d in devices}
    media = {m.sha256: m for m in session.scalars(
        select(Media).where(Media.sha256.in_({sha for bc in found for sha in bc.media})))}
    for bc in found:
        if bc.start_at + timedelta(seconds=bc.duration_s) < now:
            continue
        item = one_off_item(bc, item_id_for(bc.id), media)
        for st in plan(session, Targets.model_validate(bc.targets)).stations(session):
            if st.id in wanted:
                items.setdefault(st.id, []).append(item)
    return items


def apply_volumes(session: Session, items: dict[int, list[ScheduleItem]]) -> None:
    """Emergency items in a desired state (the broadcast itself, its repeats) carry the
    emergency volume, as their PLAY did. Called from desired_state.build."""
    rows = session.execute(select(EmergencyBroadcast.broadcast_id, EmergencyBroadcast.schedule_id,
                                  EmergencyBroadcast.volume)
                           .where(EmergencyBroadcast.status == EmergencyStatus.ACTIVE)).all()
    if not rows:
        return
    by_bc = {b: v for b, _, v in rows}
    by_sc = {s: v for _, s, v in rows if s is not None}
    for device_id, its in items.items():
        changed = False
        out = []
        for it in its:
            vol = by_bc.get(it.broadcast_id) if it.broadcast_id is not None else None
            if vol is None and it.item_id.startswith("s"):
                parsed = recurrence.parse_item_id(it.item_id)
                vol = by_sc.get(parsed[0]) if parsed else None
            if vol is not None and it.volume != vol:
                it = it.model_copy(update={"volume": vol})
                changed = True
            out.append(it)
        if changed:
            items[device_id] = out
