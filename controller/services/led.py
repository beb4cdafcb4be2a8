"""LED-board content: operator messages, emergency mirrors, what each board gets, previews.

The database holds the messages; each LED board's retained desired state carries the ones
addressed to it (``content_for``, called from desired_state.build), and the agent picks what
to show from their validity windows and priorities. Text-only boards are told about before
anything is sent (``board_will_show``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.i18n import t
from controller.core.permissions import communes_in_scope, covers, reaching_scope
from controller.db.models import Device, User
from controller.db.models_led import LedDelivery, LedMessageRow
from controller.db.statuses import DeviceKind, LedMessageStatus, LedSource
from controller.schemas.led import LedMessageCreate
from controller.services import audit, dispatch
from controller.services.recurrence import DEFAULT_TZ, Recurrence
from controller.services.targets import Targets, resolve, stored
from device_agents.led.text import to_board_ascii
from protocol.messages import BrightnessStep, LedContent, LedMessage, Priority

# Night dimming for every board unless told otherwise: full from 05:00, 40 % from 22:00 (local).
DEFAULT_BRIGHTNESS = (("05:00", 100), ("22:00", 40))
KEEP_ENDED = timedelta(minutes=1)
# Recurring LED text is expanded this far ahead into each board's desired state (the controller
# re-publishes every horizon_refresh_hours, like audio schedules).
LED_HORIZON = timedelta(days=8)


def item_id_for(message_id: int) -> str:
    return f"l{message_id}"


def board_protocol(device: Device) -> str | None:
    led = (device.reported or {}).get("led") or {}
    return led.get("protocol")


def board_will_show(
    devices: list[Device], text: str, lang: str = "vi"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per board: the exact text it will show, and warnings for every board that loses something."""
    ascii_ = to_board_ascii(text)
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for d in devices:
        proto = board_protocol(d)
        pixels = proto == "bitmap"
        shown = text if pixels else ascii_.text
        lossy = not pixels and ascii_.lossy
        rows.append({"device_id": d.id, "name": d.name, "protocol": proto or "unknown",
                     "text": shown, "lossy": lossy})
        if lossy and proto is None:
            warnings.append(t("led.unknown_board", lang, name=d.name, shown=ascii_.text))
        elif lossy:
            warnings.append(t("led.text_only", lang, name=d.name, protocol=proto, shown=ascii_.text,
                              replaced=" ".join(ascii_.replaced)))
    return rows, warnings


def _check_window(start_at: datetime | None, end_at: datetime | None, now: datetime) -> None:
    if start_at and end_at and end_at <= start_at:
        raise UserError(422, "led.bad_window", start_at=start_at.isoformat(), end_at=end_at.isoformat())
    if end_at and end_at <= now:
        raise UserError(422, "led.in_past", end_at=end_at.isoformat())


def _check_recurrence(req: LedMessageCreate) -> Recurrence | None:
    """Validate a recurring window with the audio schedules' own rule parser."""
    if req.rrule is None:
        if req.dtstart or req.until or req.exdates or req.show_minutes:
            raise UserError(422, "led.recurrence_incomplete")
        return None
    if not req.dtstart or not req.show_minutes:
        raise UserError(422, "led.recurrence_incomplete")
    if req.start_at or req.end_at:
        raise UserError(422, "led.recurrence_with_window")
    try:
        return Recurrence.of(req.rrule, req.dtstart, req.until, req.exdates, DEFAULT_TZ)
    except ValueError as exc:
        raise UserError(422, "schedule.bad_rule", rule=req.rrule, error=str(exc)) from None


def _store(session: Session, devices: list[Device], *, text: str, targets: dict[str, Any], mode: str,
           speed: int, color: str, duration_s: int, priority: Priority, start_at: datetime | None,
           end_at: datetime | None, source: str, user_id: int | None,
           recurring: LedMessageCreate | None = None) -> LedMessageRow:
    row = LedMessageRow(
        text=text, mode=mode, speed=speed, color=color, duration_s=duration_s, priority=priority.value,
        start_at=start_at, end_at=end_at, targets=targets, source=source, status=LedMessageStatus.ACTIVE,
        created_by=user_id,
    )  # fmt: skip
    if recurring is not None and recurring.rrule is not None:
        row.rrule, row.dtstart, row.until = recurring.rrule, recurring.dtstart, recurring.until
        row.exdates, row.timezone = list(recurring.exdates), DEFAULT_TZ
        row.show_s = (recurring.show_minutes or 0) * 60
    session.add(row)
    session.flush()
    for d in devices:
        session.add(LedDelivery(led_message_id=row.id, device_id=d.id, item_id=item_id_for(row.id)))
    audit.record(session, user_id, f"led.{source}", "led_message", row.id, text=text, targets=targets,
                 priority=priority.value, boards=len(devices))
    return row


def create(
    session: Session, req: LedMessageCreate, user_id: int | None, *, now: datetime | None = None,
    lang: str = "vi",
) -> tuple[LedMessageRow | None, list[int], dict[str, Any]]:
    """Validate, resolve boards, say what each will show; store unless it is a dry run."""
    now = now or datetime.now(UTC)
    start_at = req.start_at.astimezone(UTC) if req.start_at else None
    end_at = req.end_at.astimezone(UTC) if req.end_at else None
    _check_window(start_at, end_at, now)
    recurrence = _check_recurrence(req)
    devices = resolve(session, req.targets, kind=DeviceKind.LED)
    if not devices:
        raise UserError(422, "led.no_targets")
    rows, warnings = board_will_show(devices, req.text, lang)
    info: dict[str, Any] = {"board_will_show": rows, "warnings": warnings}
    if recurrence is not None:
        upcoming = recurrence.between(now, now + timedelta(days=366), limit=5)
        info["next_windows"] = [{"start_at": t.isoformat(),
                                 "end_at": (t + timedelta(minutes=req.show_minutes or 0)).isoformat()}
                                for t in upcoming]  # fmt: skip
    if req.dry_run:
        return None, [], info
    row = _store(session, devices, text=req.text, targets=stored(session, req.targets),
                 mode=req.mode, speed=req.speed, color=req.color, duration_s=req.duration_s,
                 priority=req.priority, start_at=start_at, end_at=end_at, source=LedSource.OPERATOR,
                 user_id=user_id, recurring=req)
    dispatch.stations_changed(session, [d.id for d in devices])
    return row, [d.id for d in devices], info


def cancel(session: Session, message_id: int, user_id: int | None) -> list[int]:
    row = session.get(LedMessageRow, message_id)
    if row is None:
        raise NotFound("led.not_found", id=message_id)
    row.status = LedMessageStatus.CANCELLED
    audit.record(session, user_id, "led.cancel", "led_message", row.id)
    ids = list(session.scalars(select(LedDelivery.device_id).where(LedDelivery.led_message_id == row.id)))
    dispatch.stations_changed(session, ids)
    return ids


def mirror_emergency_text(
    session: Session, area_targets: Targets | dict[str, Any], text: str, until: datetime | None,
    *, user_id: int | None = None, now: datetime | None = None,
) -> list[int]:
    """The hook for emergency broadcasts: put `text` on every LED board of the area until `until`.

    Returns the board ids whose desired state must be re-published (the caller queues them
    with dispatch.stations_changed). No board in the area is not an error: the emergency
    still goes out on air.
    """
    targets = area_targets if isinstance(area_targets, Targets) else Targets.model_validate(area_targets)
    devices = resolve(session, targets, kind=DeviceKind.LED)
    if not devices:
        return []
    now = now or datetime.now(UTC)
    _store(session, devices, text=text, targets=stored(session, targets), mode="flash",
           speed=3, color="red", duration_s=10, priority=Priority.EMERGENCY, start_at=now,
           end_at=until.astimezone(UTC) if until else None, source=LedSource.EMERGENCY, user_id=user_id)
    return [d.id for d in devices]


def windows(m: LedMessageRow, now: datetime, horizon: timedelta) -> list[tuple[str, datetime | None,
                                                                              datetime | None]]:
    """(item id, start, end) of each time `m` is shown: one window, or each recurrence in the horizon.

    Occurrence item ids are stable across rebuilds (``l{id}@{UTC}``), like audio schedules' ones.
    """
    if not m.rrule or not m.dtstart or not m.show_s:
        return [(item_id_for(m.id), m.start_at, m.end_at)]
    rec = Recurrence.of(m.rrule, m.dtstart, m.until, m.exdates or [], m.timezone or DEFAULT_TZ)
    show = timedelta(seconds=m.show_s)
    return [(f"{item_id_for(m.id)}@{t:%Y%m%dT%H%M%SZ}", t, t + show)
            for t in rec.between(now - show, now + horizon)]


def content_for(
    session: Session, device_ids: list[int], now: datetime, horizon: timedelta = LED_HORIZON
) -> dict[int, LedContent]:
    """Desired LED content of each LED board among `device_ids` (speakers are left out)."""
    boards = set(session.scalars(
        select(Device.id).where(Device.id.in_(device_ids), Device.kind == DeviceKind.LED)))
    if not boards:
        return {}
    rows = session.execute(
        select(LedDelivery.device_id, LedMessageRow)
        .join(LedMessageRow, LedDelivery.led_message_id == LedMessageRow.id)
        .where(
            LedDelivery.device_id.in_(boards),
            LedMessageRow.status == LedMessageStatus.ACTIVE,
            or_(LedMessageRow.end_at.is_(None), LedMessageRow.end_at > now - KEEP_ENDED),
        )
        .order_by(LedMessageRow.id)
    ).all()
    messages: dict[int, list[LedMessage]] = {b: [] for b in boards}
    expanded: dict[int, list[tuple[str, datetime | None, datetime | None]]] = {}
    for device_id, m in rows:
        if m.id not in expanded:
            expanded[m.id] = windows(m, now, horizon)
        for item_id, start_at, end_at in expanded[m.id]:
            messages[device_id].append(LedMessage(
                item_id=item_id, text=m.text, mode=m.mode, speed=m.speed, color=m.color,
                duration_s=m.duration_s, start_at=start_at, end_at=end_at, priority=Priority(m.priority),
            ))  # fmt: skip
    brightness = [BrightnessStep(at=a, percent=p) for a, p in DEFAULT_BRIGHTNESS]
    return {b: LedContent(messages=msgs, brightness=brightness) for b, msgs in messages.items()}


def visible_messages(
    session: Session, user: User, limit: int, *, active_only: bool = False
) -> list[LedMessageRow]:
    """Newest first, the LED texts that reach a board in the user's area (all for unscoped users);
    `active_only`: not cancelled."""
    q = select(LedMessageRow).order_by(LedMessageRow.id.desc())
    if active_only:
        q = q.where(LedMessageRow.status == LedMessageStatus.ACTIVE)
    if communes_in_scope(session, user) is None:  # every area: the database applies the limit
        return list(session.scalars(q.limit(limit)))
    return reaching_scope(session, user, session.scalars(q), lambda m: m.targets, kind=DeviceKind.LED,
                          limit=limit)


def board(session: Session, device_id: int, user: User | None = None) -> Device:
    """The active LED board; with `user`, only one in their area (another area's is not found)."""
    device = session.get(Device, device_id)
    if device is None or device.retired_at is not None or (
        user is not None and not covers(session, user, device.commune_id)
    ):
        raise NotFound("device.not_found", id=device_id)
    if device.kind != DeviceKind.LED:
        raise UserError(404, "led.not_a_board", id=device_id)
    return device


def preview_png(device: Device) -> bytes:
    """What the board shows now, drawn by the same bitmap path the boards and the simulator use."""
    from device_agents.led.bitmap import render_png

    led = (device.reported or {}).get("led") or {}
    return render_png(led.get("text") or "", width=int(led.get("width") or 192),
                      height=int(led.get("height") or 32), color=led.get("color") or "amber",
                      brightness=int(led.get("brightness") or 100))


def health(device: Device) -> dict[str, Any]:
    reported = device.reported or {}
    led = reported.get("led") or {}
    tele = (reported.get("telemetry") or {}).get("extra", {}).get("led") or {}
    last_ack = tele.get("last_ack_at") or led.get("last_ack_at")
    return {
        "device_id": device.id, "online": device.online,
        "last_seen": device.last_seen.isoformat() if device.last_seen else None,
        "protocol": led.get("protocol"),
        "controller_reachable": tele.get("reachable", led.get("reachable")),
        "last_ack_at": datetime.fromtimestamp(last_ack, UTC).isoformat() if last_ack else None,
        "temperature_c": tele.get("temperature_c", led.get("temperature_c")),
        "showing": led.get("text"), "original": led.get("original"),
        "item_ids": led.get("item_ids") or [], "brightness": led.get("brightness"),
    }  # fmt: skip
