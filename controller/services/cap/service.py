"""A received CAP 1.2 alert -> a record, and (for an actual, public alert for our areas) a
broadcast: emergency/priority through `services.emergency`, normal as a draft awaiting
approval. Update replaces the thread's running broadcast, Cancel stops it; Test, Exercise,
Draft and System alerts are recorded and never reach a loudspeaker. docs/cap.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.core.permissions import area_names, communes_of_broadcasts, outside_scope
from controller.db.models import Broadcast, Device, Media, User
from controller.db.models_cap import CapAlertRecord
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.statuses import PLANNED_BROADCAST, CapOutcome, DeviceKind
from controller.services import approval, audit, broadcasts, dispatch, emergency
from controller.services.cap.areas import AreaMatch, map_areas
from controller.services.cap.parse import CapAlert, CapInfo, parse_alert
from controller.services.media import record_speech
from controller.services.policy import PolicyViolation
from controller.services.targets import Targets, resolve
from protocol.messages import Priority

if TYPE_CHECKING:
    from controller.services.emergency import EmergencyDeps

log = logging.getLogger(__name__)

LED_TEXT_MAX = 1000  # BroadcastCreate.text
# CAP <urgency> x <severity> -> our priority (docs/cap.md explains each row).
_URGENT = ("Immediate", "Expected")
PRIORITY_TABLE: dict[tuple[str, str], Priority] = {}
for _sev in ("Extreme", "Severe"):
    for _urg in _URGENT:
        PRIORITY_TABLE[(_urg, _sev)] = Priority.EMERGENCY
    PRIORITY_TABLE[("Future", _sev)] = Priority.PRIORITY
    PRIORITY_TABLE[("Unknown", _sev)] = Priority.PRIORITY
for _urg in (*_URGENT, "Future"):
    PRIORITY_TABLE[(_urg, "Moderate")] = Priority.PRIORITY
# Everything else (Minor, Unknown severity, urgency Past) is Priority.NORMAL.
NOT_ON_AIR = ("Exercise", "System", "Test", "Draft")


def priority_for(urgency: str, severity: str, certainty: str = "Observed") -> Priority:
    """The documented table; an alert its sender thinks "Unlikely" never interrupts anyone."""
    if certainty == "Unlikely":
        return Priority.NORMAL
    return PRIORITY_TABLE.get((urgency, severity), Priority.NORMAL)


@dataclass
class Received:
    record: CapAlertRecord
    created: bool  # a broadcast (on air or draft) was created: 201
    duplicate: bool = False


def pick_info(alert: CapAlert, vi_voice: str) -> tuple[CapInfo | None, str | None]:
    """The <info> we act on and the voice to read it: Vietnamese first, then English;
    otherwise the first <info> (its areas and priority still count) with no voice."""
    for prefix, voice in (("vi", vi_voice), ("en", "en-us")):
        for info in alert.infos:
            if info.language.lower().split("-")[0] == prefix:
                return info, voice
    return (alert.infos[0], None) if alert.infos else (None, None)


def spoken_text(info: CapInfo) -> str:
    parts = [info.headline or info.event, info.instruction]
    return ". ".join(p.strip().rstrip(".") for p in parts if p and p.strip()) + "."


def led_text(info: CapInfo) -> str:
    return (info.headline or info.event or "CAP")[:LED_TEXT_MAX]


def record_json(rec: CapAlertRecord, *, raw: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rec.id, "identifier": rec.identifier, "sender": rec.sender, "sent": rec.sent,
        "status": rec.status, "msg_type": rec.msg_type, "scope": rec.scope, "references": rec.references,
        "thread_id": rec.thread_id, "language": rec.language, "event": rec.event,
        "headline": rec.headline, "urgency": rec.urgency, "severity": rec.severity,
        "certainty": rec.certainty, "priority": rec.priority, "broadcast_id": rec.broadcast_id,
        "outcome": rec.outcome, "detail": rec.detail,
        "received_at": rec.received_at.isoformat() if rec.received_at else None,
    }  # fmt: skip
    if raw:
        body["raw_xml"] = rec.raw_xml
    return body


# -- the pieces -----------------------------------------------------------------------------------------
def _existing(session: Session, alert: CapAlert) -> CapAlertRecord | None:
    return session.scalar(select(CapAlertRecord).where(
        CapAlertRecord.sender == alert.sender, CapAlertRecord.identifier == alert.identifier))


def _referenced(session: Session, alert: CapAlert) -> list[CapAlertRecord]:
    if not alert.references:
        return []
    keys = [(r.sender, r.identifier) for r in alert.references]
    return list(session.scalars(select(CapAlertRecord).where(
        tuple_(CapAlertRecord.sender, CapAlertRecord.identifier).in_(keys))))


def _thread_broadcasts(session: Session, refs: list[CapAlertRecord]) -> list[Broadcast]:
    """Broadcasts still scheduled (or drafted) anywhere in the referenced alerts' threads."""
    if not refs:
        return []
    threads = {r.thread_id or r.id for r in refs}
    rows = session.scalars(select(CapAlertRecord.broadcast_id).where(
        or_(CapAlertRecord.thread_id.in_(threads), CapAlertRecord.id.in_(threads)),
        CapAlertRecord.broadcast_id.is_not(None)))
    ids = sorted({i for i in rows if i is not None})
    if not ids:
        return []
    return list(session.scalars(select(Broadcast).where(
        Broadcast.id.in_(ids), Broadcast.status.in_(PLANNED_BROADCAST)).order_by(Broadcast.id)))


def _require_thread_in_scope(session: Session, user: User | None, bcs: list[Broadcast]) -> None:
    """An Update or Cancel may stop only broadcasts its sender could have sent: every station of
    every one of them inside the sender's area. Otherwise the whole message is refused (403)
    before anything stops, so one feed account cannot silence another area's warning."""
    if user is None or not bcs:
        return
    reached = communes_of_broadcasts(session, [bc.id for bc in bcs])
    outside = outside_scope(session, user, set().union(*reached.values()))
    if outside:
        raise UserError(403, "cap.thread_outside_area", names=area_names(session, outside))


async def _stop(deps: EmergencyDeps, session: Session, bcs: list[Broadcast], user: User | None) -> list[int]:
    stopped = []
    for bc in bcs:
        if session.get(EmergencyBroadcast, bc.id) is not None:
            await emergency.stop(deps, session, bc.id, user)
        else:
            device_ids = broadcasts.cancel(session, bc.id, user.id if user else None)
            dispatch.stations_changed(session, device_ids)
            session.commit()
        stopped.append(bc.id)
    return stopped


def _in_scope(session: Session, user: User | None, match: AreaMatch) -> tuple[Targets | None, list[str]]:
    """What of the matched areas the sending account may reach, as broadcast targets."""
    notes: list[str] = []
    communes = set(match.communes)
    devices = set(match.devices)
    if user is not None:
        rows = (session.execute(select(Device.id, Device.commune_id).where(Device.id.in_(devices))).all()
                if devices else [])
        # The user's scope once for the communes and the stations' communes, not per commune.
        outside = outside_scope(session, user, communes | {c for _, c in rows})
        communes -= outside
        devices -= {i for i, c in rows if c in outside}
        if outside:
            notes.append(f"outside the account's area, left out: communes {sorted(outside)}")
    if not communes and not devices:
        return None, notes
    targets = Targets(communes=sorted(communes), devices=sorted(devices))
    if not resolve(session, targets, kind=DeviceKind.SPEAKER):
        notes.append("no loudspeaker station in the matched areas")
        return None, notes
    return targets, notes


async def _speak(deps: EmergencyDeps, session: Session, text: str, voice: str, user: User | None) -> Media:
    service = deps.tts
    text = text[: service.max_chars]
    name = f"CAP (TTS {voice}): {' '.join(text.split())[:80]}"
    return await record_speech(session, deps.media, service, text, voice, name, user.id if user else None,
                               emergency=True)  # fmt: skip


# -- the entry point ------------------------------------------------------------------------------------
async def receive(deps: EmergencyDeps, session: Session, raw: bytes, user: User | None) -> Received:
    """Parse and act on one alert. Any invalid input is a UserError (4xx) and nothing is stored."""
    alert = parse_alert(raw)
    found = _existing(session, alert)
    if found is not None:
        return _duplicate(found, alert)
    if alert.msg_type in ("Update", "Cancel") and not alert.references:
        raise UserError(422, "cap.needs_references", msg_type=alert.msg_type)
    info, voice = pick_info(alert, deps.settings.cap_voice_vi)
    refs = _referenced(session, alert)
    prio = priority_for(info.urgency, info.severity, info.certainty) if info else None
    rec = CapAlertRecord(
        sender=alert.sender, identifier=alert.identifier, sent=alert.sent, sent_at=alert.sent_at,
        status=alert.status, msg_type=alert.msg_type, scope=alert.scope,
        references=[f"{r.sender},{r.identifier},{r.sent}" for r in alert.references],
        thread_id=min((r.thread_id or r.id for r in refs), default=None),
        language=info.language if info else None, event=info.event if info else None,
        headline=info.headline if info else None, urgency=info.urgency if info else None,
        severity=info.severity if info else None, certainty=info.certainty if info else None,
        priority=prio.value if prio else None, raw_xml=raw.decode("utf-8", errors="replace"),
        outcome=CapOutcome.RECEIVED, detail={}, received_by=user.id if user else None,
    )  # fmt: skip
    session.add(rec)
    uid = user.id if user else None
    try:
        session.flush()  # the (sender, identifier) unique key: a concurrent twin stops here
        rec.thread_id = rec.thread_id or rec.id
        audit.record(session, uid, "cap.receive", "cap_alert", rec.id, identifier=alert.identifier,
                     sender=alert.sender, status=alert.status, msg_type=alert.msg_type)
        # Claimed before the slow part (speech synthesis): a twin posted meanwhile finds it, and
        # SQLite's write lock is not held through it.
        session.commit()
    except IntegrityError:
        session.rollback()
        twin = _existing(session, alert)
        if twin is None:
            raise
        return _duplicate(twin, alert)
    rec_id = rec.id
    try:
        return await _act(deps, session, rec, alert, info, voice, prio, refs, user)
    except Exception as exc:
        # Nothing aired: forget the claim so the sender's retry is handled afresh (a record that
        # did air, e.g. broker down after the commit, stays and makes a retry a duplicate).
        session.rollback()
        stored = session.get(CapAlertRecord, rec_id)
        if stored is not None and stored.outcome == CapOutcome.RECEIVED:
            session.delete(stored)
            audit.record(session, uid, "cap.failed", "cap_alert", rec_id, identifier=alert.identifier,
                         error=getattr(exc, "key", type(exc).__name__))
            session.commit()
        raise


def _duplicate(found: CapAlertRecord, alert: CapAlert) -> Received:
    if found.sent != alert.sent:
        raise UserError(409, "cap.identifier_reused", identifier=alert.identifier, sender=alert.sender,
                        sent=found.sent, new_sent=alert.sent)
    return Received(found, created=False, duplicate=True)


def _finish(session: Session, rec: CapAlertRecord, outcome: str, **detail: Any) -> Received:
    rec.outcome = outcome
    rec.detail = {**(rec.detail or {}), **detail}
    session.commit()
    return Received(rec, created=outcome in (CapOutcome.AIRED, CapOutcome.DRAFT))


async def _act(
    deps: EmergencyDeps, session: Session, rec: CapAlertRecord, alert: CapAlert, info: CapInfo | None,
    voice: str | None, prio: Priority | None, refs: list[CapAlertRecord], user: User | None,
) -> Received:
    if alert.status in NOT_ON_AIR:
        return _finish(session, rec, CapOutcome.RECORDED_ONLY, reason=f"status {alert.status}: never aired")
    if alert.msg_type in ("Ack", "Error"):
        return _finish(session, rec, CapOutcome.RECORDED_ONLY, reason=f"msgType {alert.msg_type}")
    if alert.scope != "Public":
        return _finish(session, rec, CapOutcome.NOT_PUBLIC,
                       reason=f"scope {alert.scope}: not for loudspeakers")
    stopped: list[int] = []
    if alert.msg_type in ("Update", "Cancel"):
        running = _thread_broadcasts(session, refs)
        _require_thread_in_scope(session, user, running)
        stopped = await _stop(deps, session, running, user)
        if not refs:
            rec.detail = {"references_unknown": rec.references}
    if alert.msg_type == "Cancel":
        return _finish(session, rec, CapOutcome.CANCELLED, stopped=stopped)
    if info is None or prio is None:
        return _finish(session, rec, CapOutcome.NO_INFO, stopped=stopped)
    now = datetime.now(UTC)
    if info.expires is not None and info.expires <= now:
        return _finish(session, rec, CapOutcome.EXPIRED, stopped=stopped, expires=info.expires.isoformat())
    match = map_areas(session, info.areas, geocode_names=deps.settings.cap_geocode_names,
                      geocode_map=deps.settings.cap_geocode_map)
    targets, notes = _in_scope(session, user, match)
    area_detail = {"areas": match.notes + notes, "communes": sorted(match.communes),
                   "devices": sorted(match.devices)}
    if targets is None:
        return _finish(session, rec, CapOutcome.NOT_FOR_US, stopped=stopped, **area_detail)
    if voice is None:
        return _finish(session, rec, CapOutcome.UNSUPPORTED_LANGUAGE, stopped=stopped, **area_detail)
    media = await _speak(deps, session, spoken_text(info), voice, user)
    title = f"CAP: {led_text(info)}"[:300]
    communes = {d.commune_id for d in resolve(session, targets, kind=DeviceKind.SPEAKER)}
    direct = prio is Priority.EMERGENCY or (
        prio is Priority.PRIORITY and (user is None or approval.can_approve(session, user, communes)))
    if direct:
        req = broadcasts.BroadcastCreate(title=title, media_sha256=media.sha256, targets=targets,
                                         priority=prio, text=led_text(info))
        try:
            bc = (await emergency.start(deps, session, req, user)).broadcast
        except PolicyViolation as exc:  # priority in quiet hours etc.: an approver decides
            area_detail["policy"] = exc.key
        except UserError as exc:
            if exc.key != "emergency.broker_down":
                raise
            # Stored and committed: the desired state carries it once the broker is back. The
            # record says so (a retry of this alert is then a duplicate, never a second airing).
            rec.broadcast_id = session.scalar(select(Broadcast.id).where(
                Broadcast.title == title, Broadcast.created_at >= now).order_by(Broadcast.id.desc()).limit(1))
            _finish(session, rec, CapOutcome.AIRED, stopped=stopped, voice=voice, broker="down at start",
                    **area_detail)
            raise
        else:
            rec.broadcast_id = bc.id
            return _finish(session, rec, CapOutcome.AIRED, stopped=stopped, voice=voice, **area_detail)
    # Normal (or priority the account may not approve): a draft an approver can send.
    start_at = now + timedelta(minutes=deps.settings.cap_draft_lead_minutes)
    req = broadcasts.BroadcastCreate(title=title, media_sha256=media.sha256, targets=targets,
                                     priority=prio, start_at=start_at)
    bc = broadcasts.create(session, req, user.id if user else None, draft=True).broadcast
    rec.broadcast_id = bc.id
    audit.record(session, user.id if user else None, "cap.draft", "broadcast", bc.id, cap_alert=rec.id,
                 priority=prio.value)
    return _finish(session, rec, CapOutcome.DRAFT, stopped=stopped, voice=voice, **area_detail)
