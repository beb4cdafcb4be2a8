"""Alarms where people are: each user's own SMS and Zalo messages (issue 20 item 9).

Webhooks and e-mail go to the duty desk; these go to a person's phone, so they follow the
person's settings (`UserAlertPrefs`, the account page):

- only stations in the user's own area (`permissions.covers`, the rule every page uses);
- one message when an alarm episode opens and one when it is resolved (an acknowledgement is
  the desk talking to itself: not worth waking anyone). The engine publishes each change of an
  episode once (`INSERT … ON CONFLICT DO NOTHING`, `UPDATE … RETURNING`), also with replicas;
- during the user's quiet hours (local time, e.g. 22:00–06:00) only `alarm_critical_kinds`
  (default: the station is offline, mains loss) go through; the rest is *held back*: kept in
  `held_alarm_notes` (per user and channel, once) and summed up in one digest message per user
  and channel when the quiet hours end (digest.py).

One `PersonalNotifier` per channel is one worker of the `NotificationHub`, so a slow modem
never delays Zalo. It never raises: the hub would retry the whole note and message again the
people already reached; each channel retries per message itself and a failure is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from controller.core.config import Settings
from controller.core.i18n import t
from controller.core.permissions import covers
from controller.db.models import Device, User
from controller.db.models_alerts import HeldAlarmNote, UserAlertPrefs
from controller.db.session import Database
from controller.i18n import formats
from controller.services.alarms.notify import AlarmNote, Notifier
from controller.services.alarms.sms import AtModemSms, SmsSender, fit_sms
from controller.services.alarms.zalo import ZaloOaClient
from controller.services.alarms.zalo_tokens import TokenSource, ZaloTokenStore

log = logging.getLogger(__name__)

PERSONAL_EVENTS = ("opened", "resolved")


@dataclass(frozen=True)
class Recipient:
    username: str
    address: str  # the phone number or the Zalo user id


def parse_hhmm(value: str | None) -> time | None:
    """ "22:00" -> 22:00; None for empty; ValueError for anything else."""
    if not value:
        return None
    hh, _, mm = value.partition(":")
    if not (hh.isdigit() and mm.isdigit() and len(mm) == 2 and len(hh) <= 2):
        raise ValueError(value)
    return time(int(hh), int(mm))


def in_quiet_hours(local: time, start: time | None, end: time | None) -> bool:
    """Is `local` inside [start, end)? A window past midnight (22:00–06:00) wraps."""
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def message_text(note: AlarmNote, tz: str) -> str:
    """The one-line text a person reads: "Cảnh báo: Trạm mất kết nối – Cụm loa 01 lúc 22:15 06/12/2026"."""
    at = note.resolved_at if note.event == "resolved" and note.resolved_at else note.opened_at
    return t(f"alarm.personal.{note.event}", "vi", kind_name=t(f"alarm.kind.{note.kind}", "vi"),
             device=note.device_name, at=formats.time_date(at, tz, "vi"))  # fmt: skip


def sms_text(note: AlarmNote, tz: str) -> str:
    """70 characters at most, the essentials first so a cut only shortens the station's name:
    "Cảnh báo 22:15 06/12: Trạm mất kết nối – Cụm loa 01 – Xã Hợp Hòa"."""
    at = note.resolved_at if note.event == "resolved" and note.resolved_at else note.opened_at
    when = formats.time_date(at, tz, "vi")[:-5]  # "22:15 06/12": the year is this year's
    return fit_sms(t(f"alarm.sms.{note.event}", "vi", kind_name=t(f"alarm.kind.{note.kind}", "vi"),
                     device=note.device_name, at=when))  # fmt: skip


def zalo_text(note: AlarmNote, tz: str) -> str:
    """The line, then the details (a chat message has room)."""
    return message_text(note, tz) + "\n\n" + note.body("vi", tz)


class Channel(Protocol):
    kind: str  # "sms" | "zalo"
    name: str

    def address(self, prefs: UserAlertPrefs) -> str | None: ...

    async def deliver(self, address: str, note: AlarmNote) -> None: ...

    async def deliver_text(self, address: str, text: str) -> None: ...


class SmsChannel:
    kind = "sms"

    def __init__(self, sender: SmsSender, tz: str) -> None:
        self._sender = sender
        self._tz = tz
        self.name = sender.name

    def address(self, prefs: UserAlertPrefs) -> str | None:
        return prefs.phone if prefs.sms else None

    async def deliver(self, address: str, note: AlarmNote) -> None:
        await asyncio.to_thread(self._sender.send, address, sms_text(note, self._tz))

    async def deliver_text(self, address: str, text: str) -> None:
        await asyncio.to_thread(self._sender.send, address, fit_sms(text))


class ZaloChannel:
    kind = "zalo"

    def __init__(self, client: ZaloOaClient, tz: str) -> None:
        self._client = client
        self._tz = tz
        self.name = client.name

    def address(self, prefs: UserAlertPrefs) -> str | None:
        return prefs.zalo_user_id if prefs.zalo else None

    async def deliver(self, address: str, note: AlarmNote) -> None:
        await self._client.send_text(address, zalo_text(note, self._tz))

    async def deliver_text(self, address: str, text: str) -> None:
        await self._client.send_text(address, text)

    @property
    def tokens(self) -> TokenSource:
        return self._client.tokens

    async def close(self) -> None:
        await self._client.close()


def hold(s: Session, user: User, prefs: UserAlertPrefs, channel: str, note: AlarmNote) -> None:
    """Keep a held-back change for the user's digest (once, also when two replicas hold it)."""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[s.get_bind().dialect.name]
    at = note.resolved_at if note.event == "resolved" and note.resolved_at else note.opened_at
    s.execute(insert(HeldAlarmNote).values(
        user_id=user.id, channel=channel, alarm_id=note.alarm_id, event=note.event, kind=note.kind,
        device_name=note.device_name[:200], at=at, opened_at=note.opened_at,
        quiet=f"{prefs.quiet_start}–{prefs.quiet_end}",
        status="held", attempts=0, created_at=datetime.now(UTC),
    ).on_conflict_do_nothing(index_elements=["user_id", "channel", "alarm_id", "event"]))  # fmt: skip


def recipients(db: Database, cfg: Settings, channel: Channel, note: AlarmNote,
               now: datetime | None = None) -> list[Recipient]:  # fmt: skip
    """The people this note goes to on this channel, by area and quiet hours (the held-back
    ones are kept for their digest)."""
    local = (now or datetime.now(UTC)).astimezone(ZoneInfo(cfg.timezone)).time()
    critical = note.kind in cfg.alarm_critical_kinds
    out: list[Recipient] = []
    with db.session() as s:
        device = s.get(Device, note.device_id)
        if device is None:
            return []
        rows = s.execute(select(User, UserAlertPrefs).join(UserAlertPrefs, UserAlertPrefs.user_id == User.id)
                         .where(User.active.is_(True)).order_by(User.username))  # fmt: skip
        for user, prefs in rows:
            address = channel.address(prefs)
            if not address or not covers(s, user, device.commune_id):
                continue
            try:
                quiet = in_quiet_hours(local, parse_hhmm(prefs.quiet_start), parse_hhmm(prefs.quiet_end))
            except ValueError:
                quiet = False
            if quiet and not critical:
                log.info("%s: alarm %s %s held back for %s until the end of quiet hours %s–%s",
                         channel.name, note.alarm_id, note.event, user.username, prefs.quiet_start,
                         prefs.quiet_end)  # fmt: skip
                hold(s, user, prefs, channel.kind, note)
                continue
            out.append(Recipient(user.username, address))
    return out


class PersonalNotifier:
    """One channel's messages to the people who asked for them (a `Notifier` of the hub)."""

    def __init__(self, db: Database, cfg: Settings, channel: Channel,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self._db = db
        self._cfg = cfg
        self._clock = clock
        self.channel = channel
        self.name = f"personal-{channel.name}"

    async def send(self, note: AlarmNote) -> None:
        if note.event not in PERSONAL_EVENTS:
            return
        people = await asyncio.to_thread(recipients, self._db, self._cfg, self.channel, note, self._clock())
        for person in people:
            try:
                await self.channel.deliver(person.address, note)
                log.info("%s: alarm %s %s sent to %s", self.name, note.alarm_id, note.event, person.username)
            except asyncio.CancelledError:
                raise
            except (
                Exception
            ) as exc:  # logged by the channel with its reason; the next person still gets theirs
                log.warning("%s: alarm %s %s not delivered to %s: %s", self.name, note.alarm_id, note.event,
                            person.username, exc)  # fmt: skip

    async def close(self) -> None:
        close = getattr(self.channel, "close", None)
        if close is not None:
            await close()


def personal_notifiers(db: Database, cfg: Settings) -> list[Notifier]:
    """The SMS and Zalo notifiers the settings turn on (none when neither is configured)."""
    out: list[Notifier] = []
    if cfg.alarm_sms_port:
        modem = AtModemSms(cfg.alarm_sms_port, baudrate=cfg.alarm_sms_baudrate,
                           attempts=cfg.alarm_sms_attempts, backoff_s=cfg.alarm_sms_retry_s)  # fmt: skip
        out.append(PersonalNotifier(db, cfg, SmsChannel(modem, cfg.timezone)))
    if cfg.zalo_enabled:
        tokens: TokenSource | str
        if cfg.zalo_refreshable:
            tokens = ZaloTokenStore(db, cfg)
        else:
            assert cfg.zalo_oa_access_token is not None
            tokens = cfg.zalo_oa_access_token.get_secret_value()
        client = ZaloOaClient(cfg.zalo_oa_url, tokens, attempts=cfg.zalo_attempts,
                              backoff_s=cfg.zalo_retry_s)  # fmt: skip
        out.append(PersonalNotifier(db, cfg, ZaloChannel(client, cfg.timezone)))
    return out
