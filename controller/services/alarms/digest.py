"""The quiet-hours digest: what was held back, in one message per user and channel at the end.

During a user's quiet hours non-critical alarm changes are kept in `held_alarm_notes` (personal.py
`hold`, once per user, channel, alarm and event). When the user is no longer in quiet hours, one
message per channel sums them up, episodes over during the night said as such:

    SMS:  "Trong giờ yên lặng 22:00–06:00: 3 cảnh báo, 2 đã hết: Đứt dây loa (đã hết); Tủ…"
    Zalo: the same head, then one line per episode with its times.

Nothing twice, also with replicas: the dispatch-lease holder runs the loop, and each digest first
*claims* its rows (`UPDATE … SET status='sending', digest_id=<new> WHERE status='held'`): rows
another replica claimed are not in it. After delivery they are `sent`; a failed delivery puts
them back (`held`) for the next tick, `failed` after MAX_ATTEMPTS. A replica killed between claim
and delivery leaves them `sending`: lost rather than sent twice (logged when it happens is not
possible; the alarm page still shows what is open). The text is Vietnamese: users have no
language setting of their own (the SMS and Zalo alarm texts are Vietnamese too).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from controller.core.config import Settings
from controller.core.i18n import t
from controller.db.models import User
from controller.db.models_alerts import HeldAlarmNote, UserAlertPrefs
from controller.db.session import Database
from controller.i18n import formats
from controller.services.alarms.personal import Channel, in_quiet_hours, parse_hhmm
from controller.services.alarms.sms import fit_sms

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
HELD, SENDING, SENT, FAILED, DROPPED = "held", "sending", "sent", "failed", "dropped"


@dataclass(frozen=True)
class Episode:
    kind: str
    device_name: str
    opened_at: datetime  # also for one that opened before the quiet hours (only its end was held)
    resolved_at: datetime | None  # None: not over yet


def episodes(rows: Sequence[HeldAlarmNote]) -> list[Episode]:
    """One entry per alarm, in the order they opened."""
    by_alarm: dict[int, dict[str, HeldAlarmNote]] = {}
    for r in sorted(rows, key=lambda r: (r.at, r.id)):
        by_alarm.setdefault(r.alarm_id, {})[r.event] = r
    out = []
    for events in by_alarm.values():
        first = events.get("opened") or events["resolved"]
        out.append(Episode(first.kind, first.device_name, first.opened_at,
                           events["resolved"].at if "resolved" in events else None))  # fmt: skip
    return sorted(out, key=lambda e: e.opened_at)


def digest_text(quiet: str, eps: Sequence[Episode], channel: str, tz: str, lang: str = "vi") -> str:
    """SMS: one line cut to 70 characters; Zalo: the head, then a line per episode."""
    over = sum(1 for e in eps if e.resolved_at is not None)
    head = t("alarm.digest.head", lang, quiet=quiet, count=len(eps), over=over)

    def name(e: Episode) -> str:
        return f"{t(f'alarm.kind.{e.kind}', lang)} – {e.device_name}"

    if channel == "sms":  # 70 characters: the counts, then the kinds (the stations' names would not fit)
        items = []
        for e in eps:
            kind = t(f"alarm.kind.{e.kind}", lang)
            items.append(t("alarm.digest.item_over", lang, item=kind) if e.resolved_at else kind)
        return fit_sms(f"{head}: " + "; ".join(items))
    lines = []
    for e in eps:
        opened = formats.time_date(e.opened_at, tz, lang)
        if e.resolved_at is not None:
            lines.append(t("alarm.digest.line_over", lang, at=opened, item=name(e),
                           over_at=formats.time_date(e.resolved_at, tz, lang)))  # fmt: skip
        else:
            lines.append(t("alarm.digest.line_open", lang, at=opened, item=name(e)))
    return head + ":\n" + "\n".join(f"• {line}" for line in lines)


class QuietDigest:
    """Sends the digests that are due; `run` ticks on the leader, `tick` is one pass (tests)."""

    def __init__(self, db: Database, cfg: Settings, channels: Sequence[Channel], *,
                 is_leader: Callable[[], bool] = lambda: True,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self._db = db
        self._cfg = cfg
        self._channels = {c.kind: c for c in channels}
        self._is_leader = is_leader
        self._clock = clock

    def _due(self, now: datetime) -> list[tuple[int, str, str]]:
        """(user id, channel, address) whose held notes may go now; drops what can never go."""
        local = now.astimezone(ZoneInfo(self._cfg.timezone)).time()
        out = []
        with self._db.session() as s:
            pending = s.execute(select(HeldAlarmNote.user_id, HeldAlarmNote.channel)
                                .where(HeldAlarmNote.status == HELD).distinct()).all()  # fmt: skip
            for user_id, kind in pending:
                channel = self._channels.get(kind)
                if channel is None:
                    continue  # not configured on this replica
                user, prefs = s.get(User, user_id), s.get(UserAlertPrefs, user_id)
                address = channel.address(prefs) if prefs is not None else None
                if user is None or not user.active or not address:
                    s.execute(update(HeldAlarmNote).where(HeldAlarmNote.user_id == user_id,
                                                          HeldAlarmNote.channel == kind,
                                                          HeldAlarmNote.status == HELD)
                              .values(status=DROPPED))  # fmt: skip
                    log.info("%s: held alarms of user %s dropped (channel off, account gone)", kind, user_id)
                    continue
                assert prefs is not None
                try:
                    quiet = in_quiet_hours(local, parse_hhmm(prefs.quiet_start), parse_hhmm(prefs.quiet_end))
                except ValueError:
                    quiet = False
                if not quiet:
                    out.append((user_id, kind, address))
        return out

    def _claim(self, user_id: int, kind: str) -> tuple[str, list[HeldAlarmNote]] | None:
        digest_id = secrets.token_hex(16)
        with self._db.session() as s:
            won = s.execute(update(HeldAlarmNote)
                            .where(HeldAlarmNote.user_id == user_id, HeldAlarmNote.channel == kind,
                                   HeldAlarmNote.status == HELD)
                            .values(status=SENDING, digest_id=digest_id))  # fmt: skip
            if not won.rowcount:  # type: ignore[attr-defined]
                return None
        with self._db.session() as s:
            rows = list(s.scalars(select(HeldAlarmNote).where(HeldAlarmNote.digest_id == digest_id)))
            s.expunge_all()
        return digest_id, rows

    def _finish(self, digest_id: str, ok: bool) -> None:
        with self._db.session() as s:
            if ok:
                s.execute(update(HeldAlarmNote).where(HeldAlarmNote.digest_id == digest_id)
                          .values(status=SENT, sent_at=self._clock()))  # fmt: skip
                return
            s.execute(update(HeldAlarmNote).where(HeldAlarmNote.digest_id == digest_id)
                      .values(attempts=HeldAlarmNote.attempts + 1))  # fmt: skip
            s.execute(update(HeldAlarmNote).where(HeldAlarmNote.digest_id == digest_id,
                                                  HeldAlarmNote.attempts >= MAX_ATTEMPTS)
                      .values(status=FAILED))  # fmt: skip
            s.execute(update(HeldAlarmNote).where(HeldAlarmNote.digest_id == digest_id,
                                                  HeldAlarmNote.status == SENDING)
                      .values(status=HELD, digest_id=None))  # fmt: skip

    async def tick(self) -> int:
        """Send every digest due now; how many were sent."""
        sent = 0
        for user_id, kind, address in await asyncio.to_thread(self._due, self._clock()):
            claimed = await asyncio.to_thread(self._claim, user_id, kind)
            if claimed is None:
                continue  # another replica took them
            digest_id, rows = claimed
            eps = episodes(rows)
            text = digest_text(rows[0].quiet, eps, kind, self._cfg.timezone)
            channel = self._channels[kind]
            try:
                await channel.deliver_text(address, text)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: quiet-hours digest for user %s not delivered: %s", channel.name,
                            user_id, exc)  # fmt: skip
                await asyncio.to_thread(self._finish, digest_id, False)
                continue
            await asyncio.to_thread(self._finish, digest_id, True)
            log.info("%s: quiet-hours digest sent to user %s (%d alarms)", channel.name, user_id, len(eps))
            sent += 1
        return sent

    async def run(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            if not self._is_leader():
                continue
            try:
                await self.tick()
            except Exception:
                log.exception("quiet-hours digest failed; retrying next tick")
