"""The SMS seam byte for byte: the controller's `AtModemSms` (pyserial) against the simulated GSM
modem on a real pty. Vietnamese round-trips through UCS2, an ERROR is retried then reported."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from controller.services.alarms.sms import AtModemSms, SmsFailed, fit_sms, ucs2_hex
from firmware_sim.gsm_modem import GsmModemSim
from firmware_sim.serial_line import PtyLine


@pytest.fixture
async def modem() -> AsyncIterator[tuple[GsmModemSim, PtyLine]]:
    sim = GsmModemSim()
    line = PtyLine(sim)
    await line.start()
    yield sim, line
    await line.close()


async def test_vietnamese_text_round_trips(modem: tuple[GsmModemSim, PtyLine]) -> None:
    sim, line = modem
    sender = AtModemSms(line.path, timeout_s=3, backoff_s=0.05)
    text = "Cảnh báo: Trạm mất kết nối – Cụm loa thôn Đông, xã Hợp Hoà"
    ref = await asyncio.to_thread(sender.send, "+84912345678", text)
    assert ref == 1
    assert [(s.number, s.text) for s in sim.sent] == [("+84912345678", text)]
    # What went over the wire: text mode, UCS2, dcs 8, the number in UCS2 hex.
    assert sim.commands == ["AT", "ATE0", "AT+CMGF=1", 'AT+CSCS="UCS2"', "AT+CSMP=17,167,0,8",
                            f'AT+CMGS="{ucs2_hex("+84912345678")}"']  # fmt: skip


async def test_long_text_is_cut_to_one_sms(modem: tuple[GsmModemSim, PtyLine]) -> None:
    sim, line = modem
    long = "Đã khắc phục: Tủ thiết bị quá nóng – " + "Cụm loa số 12 đầu cầu Hoà Bình " * 3
    await asyncio.to_thread(AtModemSms(line.path, timeout_s=3).send, "0912345678", long)
    (sms,) = sim.sent
    assert len(sms.text) == 70 and sms.text.endswith("…") and sms.text == fit_sms(long)
    assert sim.refused == 0


async def test_error_is_retried_then_sent(modem: tuple[GsmModemSim, PtyLine],
                                          caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    sim, line = modem
    sim.fail_next = 2
    caplog.set_level(logging.INFO, "controller.services.alarms.sms")
    await asyncio.to_thread(AtModemSms(line.path, timeout_s=3, attempts=3, backoff_s=0.05).send,
                            "0912345678", "Mất điện lưới")  # fmt: skip
    assert sim.refused == 2 and [s.text for s in sim.sent] == ["Mất điện lưới"]
    assert caplog.text.count("+CMS ERROR: 500") == 2


async def test_error_every_time_is_reported(modem: tuple[GsmModemSim, PtyLine],
                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    sim, line = modem
    sim.fail_always = True
    sender = AtModemSms(line.path, timeout_s=3, attempts=3, backoff_s=0.05)
    with pytest.raises(SmsFailed, match=r"not sent after 3 attempts: the modem answered \+CMS ERROR: 500"):
        await asyncio.to_thread(sender.send, "0912345678", "Mất điện lưới")
    assert sim.refused == 3 and sim.sent == []
    assert "giving up on the SMS to 0912345678" in caplog.text


async def test_silent_modem_is_reported(modem: tuple[GsmModemSim, PtyLine]) -> None:
    sim, line = modem
    line.faults.set("no_reply", True)
    sender = AtModemSms(line.path, timeout_s=0.3, attempts=2, backoff_s=0.05)
    with pytest.raises(SmsFailed, match="AT answered nothing"):
        await asyncio.to_thread(sender.send, "0912345678", "Mất điện lưới")
    assert sim.sent == []
