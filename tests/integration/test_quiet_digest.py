"""The quiet-hours digest against the real seams, on SQLite and PostgreSQL: SMS through the
simulated GSM modem on a pty (AT commands, UCS2), Zalo to the local Zalo server. Alarms in a
user's quiet hours (22:00–06:00) are held back, a critical one still goes at once; when the quiet
hours end, ONE digest per channel says what happened (the episode over during the night as such),
also with two controller replicas ticking at the same moment, and never a second time. The clock
is injected: no waiting for a real night."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from controller.core.config import Settings
from controller.db.models import Area, Device, User
from controller.db.models_alerts import HeldAlarmNote, UserAlertPrefs
from controller.db.session import Database
from controller.services.alarms.digest import QuietDigest
from controller.services.alarms.notify import AlarmNote
from controller.services.alarms.personal import PersonalNotifier, SmsChannel, ZaloChannel, sms_text
from controller.services.alarms.sms import AtModemSms
from controller.services.alarms.zalo import ZaloOaClient
from firmware_sim.gsm_modem import GsmModemSim
from firmware_sim.serial_line import PtyLine
from tests.support.zalo_server import ZaloOaServer

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NIGHT = datetime(2026, 12, 6, 22, 0, tzinfo=VN)  # the quiet hours start
PHONE, ZALO_ID, OTHER_PHONE = "0912000001", "1000000000001", "0912000009"
TOKEN = "oa-token-for-tests-only"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


@pytest.fixture
def db(db: Database) -> Database:
    """One commune, two stations; the duty officer (quiet hours) and a colleague without them."""
    with db.session() as s:
        commune = Area(level="commune", name="Xã Hợp Hòa")
        s.add(commune)
        s.flush()
        for i in (1, 2):
            s.add(Device(uid=f"spk-{i}", name=f"Cụm loa 0{i}", kind="speaker", commune_id=commune.id, tags=[],
                         reported={}, online=True))  # fmt: skip
        people = (("truc.ban", PHONE, ("22:00", "06:00")), ("dong.nghiep", OTHER_PHONE, None))
        for name, phone, quiet in people:
            u = User(username=name, password_hash="x", role="commune", area_id=commune.id)
            s.add(u)
            s.flush()
            s.add(UserAlertPrefs(user_id=u.id, phone=phone, sms=True, zalo_user_id=ZALO_ID if quiet else None,
                                 zalo=bool(quiet), quiet_start=quiet[0] if quiet else None,
                                 quiet_end=quiet[1] if quiet else None))  # fmt: skip
    return db


@pytest.fixture
async def modem() -> AsyncIterator[tuple[GsmModemSim, PtyLine]]:
    sim = GsmModemSim()
    line = PtyLine(sim)
    await line.start()
    yield sim, line
    await line.close()


@pytest.fixture
def zalo() -> Iterator[ZaloOaServer]:
    z = ZaloOaServer(first_refresh_token="unused", access_token=TOKEN)
    yield z
    z.close()


def device_id(db: Database, uid: str) -> int:
    with db.session() as s:
        return s.scalars(select(Device.id).where(Device.uid == uid)).one()


def note(db: Database, event: str, alarm_id: int, kind: str, uid: str, opened: datetime,
         resolved: datetime | None = None) -> AlarmNote:  # fmt: skip
    return AlarmNote(event=event, alarm_id=alarm_id, device_id=device_id(db, uid), device_uid=uid,
                     device_name=f"Cụm loa 0{uid[-1]}", kind=kind, state="resolved" if resolved else "open",
                     opened_at=opened.astimezone(UTC),
                     resolved_at=resolved.astimezone(UTC) if resolved else None)  # fmt: skip


async def test_one_digest_per_channel_when_quiet_hours_end(
    db: Database, modem: tuple[GsmModemSim, PtyLine], zalo: ZaloOaServer
) -> None:
    sim, line = modem
    cfg = Settings(timezone="Asia/Ho_Chi_Minh")
    clock = Clock(NIGHT)

    def replica() -> tuple[list[PersonalNotifier], QuietDigest]:
        sms = SmsChannel(AtModemSms(line.path, timeout_s=3, backoff_s=0.05), cfg.timezone)
        z = ZaloChannel(ZaloOaClient(zalo.message_url, TOKEN, attempts=2, backoff_s=0.01), cfg.timezone)
        notifiers = [PersonalNotifier(db, cfg, ch, clock=clock) for ch in (sms, z)]
        return notifiers, QuietDigest(db, cfg, [sms, z], clock=clock)

    (a_notifiers, a_digest), (b_notifiers, b_digest) = replica(), replica()

    async def publish(n: AlarmNote, notifiers: list[PersonalNotifier]) -> None:
        clock.now = (n.resolved_at or n.opened_at).astimezone(VN)
        for notifier in notifiers:
            await notifier.send(n)

    # 21:30, before the quiet hours: a cut speaker line, sent at once.
    t_line = NIGHT - timedelta(minutes=30)
    line_open = note(db, "opened", 10, "speaker_line", "spk-2", t_line)
    await publish(line_open, a_notifiers)
    # The night: the line repaired at 22:45; overheating at 22:15 over at 23:40; a clock alarm at
    # 01:05 still open in the morning; the station offline at 02:00 (critical: at once, to both).
    await publish(note(db, "resolved", 10, "speaker_line", "spk-2", t_line, NIGHT + timedelta(minutes=45)),
                  a_notifiers)  # fmt: skip
    t_hot, t_cool = NIGHT + timedelta(minutes=15), NIGHT + timedelta(hours=1, minutes=40)
    t_clock, t_off = NIGHT + timedelta(hours=3, minutes=5), NIGHT + timedelta(hours=4)
    hot = note(db, "opened", 11, "overheating", "spk-1", t_hot)
    await publish(hot, a_notifiers)
    await publish(note(db, "resolved", 11, "overheating", "spk-1", t_hot, t_cool), b_notifiers)
    clock_open = note(db, "opened", 12, "clock_offset", "spk-2", t_clock)
    await publish(clock_open, a_notifiers)
    await publish(clock_open, b_notifiers)  # the same change seen twice: held once
    offline = note(db, "opened", 13, "offline", "spk-1", t_off)
    await publish(offline, a_notifiers)

    assert sim.texts_to(PHONE) == [sms_text(line_open, cfg.timezone), sms_text(offline, cfg.timezone)]
    # The colleague has no quiet hours: everything at once (the change published twice reached
    # them twice: a duplicate the engine never makes, here only to see it held once).
    assert sim.texts_to(OTHER_PHONE)[2] == sms_text(hot, cfg.timezone) and len(sim.texts_to(OTHER_PHONE)) == 7
    zalo_line, zalo_offline = zalo.texts_to(ZALO_ID)
    assert zalo_line.startswith("Cảnh báo: Đứt dây loa")
    assert zalo_offline.startswith("Cảnh báo: Trạm mất kết nối")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(HeldAlarmNote)) == 8  # 4 changes x 2 channels

    # 05:59: still quiet, both replicas tick: nothing.
    clock.now = NIGHT + timedelta(hours=7, minutes=59)
    assert await asyncio.gather(a_digest.tick(), b_digest.tick()) == [0, 0]
    # 06:00: the quiet hours are over; both replicas tick at the same moment: one digest per channel.
    clock.now = NIGHT + timedelta(hours=8)
    sent = await asyncio.gather(a_digest.tick(), b_digest.tick())
    assert sum(sent) == 2
    # One SMS holds 70 characters: the counts, then as much of the first episode as fits.
    digest_sms = "Trong giờ yên lặng 22:00–06:00: 3 cảnh báo, 2 đã hết: Đứt dây loa (đã…"
    assert sim.texts_to(PHONE) == [sms_text(line_open, cfg.timezone), sms_text(offline, cfg.timezone),
                                   digest_sms]  # fmt: skip
    assert len(digest_sms) == 70
    assert zalo.texts_to(ZALO_ID)[2:] == [
        "Trong giờ yên lặng 22:00–06:00: 3 cảnh báo, 2 đã hết:\n"
        "• 21:30 06/12/2026: Đứt dây loa – Cụm loa 02, đã hết lúc 22:45 06/12/2026\n"
        "• 22:15 06/12/2026: Tủ thiết bị quá nóng – Cụm loa 01, đã hết lúc 23:40 06/12/2026\n"
        "• 01:05 07/12/2026: Đồng hồ trạm lệch – Cụm loa 02, chưa hết"
    ]
    # Later ticks, on either replica: nothing more.
    clock.now += timedelta(minutes=5)
    assert await asyncio.gather(a_digest.tick(), b_digest.tick()) == [0, 0]
    assert len(sim.texts_to(PHONE)) == 3 and len(zalo.texts_to(ZALO_ID)) == 3
    with db.session() as s:
        assert set(s.scalars(select(HeldAlarmNote.status))) == {"sent"}
    for notifier in a_notifiers + b_notifiers:
        await notifier.close()


async def test_a_failed_digest_is_retried_not_duplicated(
    db: Database, modem: tuple[GsmModemSim, PtyLine], zalo: ZaloOaServer
) -> None:
    sim, line = modem
    cfg = Settings(timezone="Asia/Ho_Chi_Minh")
    clock = Clock(NIGHT + timedelta(hours=1))
    sms = SmsChannel(AtModemSms(line.path, timeout_s=3, attempts=1, backoff_s=0.05), cfg.timezone)
    disk = note(db, "opened", 21, "disk_low", "spk-2", clock.now)
    await PersonalNotifier(db, cfg, sms, clock=clock).send(disk)
    digest = QuietDigest(db, cfg, [sms], clock=clock)
    clock.now = NIGHT + timedelta(hours=8, minutes=1)
    sim.fail_next = 1
    assert await digest.tick() == 0 and sim.texts_to(PHONE) == []
    assert await digest.tick() == 1 and await digest.tick() == 0
    (text,) = sim.texts_to(PHONE)
    assert text.startswith("Trong giờ yên lặng 22:00–06:00: 1 cảnh báo, 0 đã hết: ")
