"""LED controller protocols at the byte level: Alpha against an independent implementation,
BX-5K against reference frames, and the simulators' handling of good and bad frames."""

from __future__ import annotations

import asyncio

import pytest
import serial
from alphasign.commands.special import WriteSpecialFunction
from alphasign.commands.text import WriteText
from alphasign.packet import Packet
from alphasign.protocol import DELAY, Color, DisplayMode, DisplayPosition, FileType

from device_agents.led import alpha, bx5k
from firmware_sim.led.board import AlphaSignSim, Bx5kSim
from firmware_sim.serial_line import PtyLine, TcpSerialLine
from testkit.waiting import eventually


def theirs(*commands: object) -> bytes:
    """alphasignpy's packet as it goes on the wire (its DELAY markers are pauses, never sent)."""
    pkt = Packet()
    for c in commands:
        pkt.add(c)  # type: ignore[arg-type]
    return pkt.to_bytes().replace(DELAY, b"")


MODES = ["rotate", "hold", "flash", "roll_up", "roll_left", "wipe_in", "scroll", "automode",
         "compressed_rotate"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("label", ["A", "B", "0"])
def test_alpha_write_text_is_byte_identical_to_alphasignpy(mode: str, label: str) -> None:
    text = b"Thong bao lich tiem chung 05/12"
    ours = alpha.write_text(text, label=label, mode=mode, position="middle")
    other = theirs(WriteText(text, label=label, position=DisplayPosition.MIDDLE_LINE,
                             mode=DisplayMode(alpha.MODES[mode])))
    assert ours == other


@pytest.mark.parametrize("color", ["red", "green", "amber", "orange", "yellow"])
def test_alpha_coloured_text_matches(color: str) -> None:
    ours = alpha.write_text(alpha.COLORS[color] + b"Bao lut", mode="hold")
    other = theirs(WriteText(Color[color.upper()].value + b"Bao lut", position=DisplayPosition.MIDDLE_LINE,
                             mode=DisplayMode.HOLD))
    assert ours == other


def test_alpha_special_functions_match() -> None:
    assert alpha.set_time(5, 30) == theirs(WriteSpecialFunction.set_time(5, 30))
    assert alpha.set_time(23, 59) == theirs(WriteSpecialFunction.set_time(23, 59))
    assert alpha.ack_nak(True) == theirs(WriteSpecialFunction.enable_ack_nak(True))
    assert alpha.ack_nak(False) == theirs(WriteSpecialFunction.enable_ack_nak(False))
    for pct in (100, 86, 72, 58, 44, 30):
        assert alpha.dimming(pct) == theirs(WriteSpecialFunction.set_dimming_register(0, pct))
    assert alpha.memory_config([("A", 1024), ("B", 256)]) == theirs(WriteSpecialFunction.configure_memory([
        {"label": "A", "type": FileType.TEXT, "size": 1024},
        {"label": "B", "type": FileType.TEXT, "size": 256}]))


def test_alpha_several_commands_in_one_packet_match() -> None:
    ours = alpha.packet((alpha.WRITE_SPECIAL, b" 0530"),
                        (alpha.WRITE_TEXT, alpha.text_data(b"Hi", mode="hold")))
    other = theirs(WriteSpecialFunction.set_time(5, 30),
                   WriteText(b"Hi", position=DisplayPosition.MIDDLE_LINE, mode=DisplayMode.HOLD))
    assert ours == other


async def test_our_simulator_shows_what_alphasignpy_sends() -> None:
    from alphasign.sign import Sign

    sim = AlphaSignSim()
    line = TcpSerialLine(sim)  # an RS-232/Ethernet converter; a pty has no DTR line to set
    await line.start()
    Sign._reset()  # type: ignore[attr-defined]
    sign = Sign()
    try:
        # Sign.open() only takes device paths; hand it the same pyserial port object it would make.
        sign._ser = await asyncio.to_thread(serial.serial_for_url, line.url, timeout=2.0)
        sign.enable_ack_nak(strict=True)  # alphasignpy insists on our ACK from the first frame on
        await asyncio.to_thread(sign.send, Packet().add(WriteSpecialFunction.enable_ack_nak(True)))
        await asyncio.to_thread(sign.send, Packet().add(
            WriteText(Color.RED.value + b"Canh bao lu", label="A", position=DisplayPosition.MIDDLE_LINE,
                      mode=DisplayMode.FLASH)))
        assert sim.state.text == "Canh bao lu"
        assert sim.state.mode == "flash" and sim.state.color == "red"
        await asyncio.to_thread(sign.send, Packet().add(WriteText(b"Uu tien", label="0")))
        assert sim.state.text == "Uu tien"  # the priority file overrides file A
        assert sim.state.frames_rejected == 0
    finally:
        sign.close()
        Sign._reset()  # type: ignore[attr-defined]
        await line.close()


def test_alpha_bad_checksum_is_refused_and_the_board_keeps_its_text() -> None:
    sim = AlphaSignSim()
    replies: list[bytes] = []
    sim.feed(alpha.ack_nak(True), replies.append)
    sim.feed(alpha.write_text(b"Lich tiem chung", mode="hold"), replies.append)
    assert sim.state.text == "Lich tiem chung"
    bad = bytearray(alpha.write_text(b"QUANG CAO CO BAC", mode="hold"))
    bad[-3] = ord("0") if bad[-3] != ord("0") else ord("1")  # checksum digit off by one
    sim.feed(bytes(bad), replies.append)
    assert sim.state.text == "Lich tiem chung"
    assert sim.state.frames_rejected == 1 and sim.state.frames_ok == 2
    assert replies[-1][:1] == bytes([alpha.NAK]) and replies[0][:1] == bytes([alpha.ACK])


# -- BX-5K -------------------------------------------------------------------------------------------
# Reference frames: ping, read status, clear (delete all dynamic areas), one dynamic text area, and the
# controller's "OK" answer (docs/led.md says where they come from).
REF_PING = "a5a5a5a5a5a5a5a5 0100 0080 000000000000 fe 02 0500 a2 00 01 0000 68f8 5a"
REF_STATUS = "a5a5a5a5a5a5a5a5 0100 0080 000000000000 fe 02 0500 a1 02 01 0000 2d40 5a"
REF_CLEAR = "a5a5a5a5a5a5a5a5 0100 0080 000000000000 fe 02 0700 a3 06 01 0200 ff 00 67cc 5a"
REF_AREA = ("a5a5a5a5a5a5a5a5 0100 0080 000000000000 fe 02 3500 a3 06 02 0000 00 01 2c00 00 0000 0c00"
            " 4000 0c00 01 0a 01 0200 000000 01 01 01 00 17 02 11000000"
            " 5c464f303030 54454d5045523a3231 a1e6 82da 5a")
REF_OK = "a5a5a5a5a5a5a5a5 0080 0100 000000000000 fe 02 0500 a0 00 00 0000 64dc 5a"


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


def test_bx5k_crc_is_crc16_arc() -> None:
    assert bx5k.crc16_arc(b"123456789") == 0xBB3D  # the catalogue check value of CRC-16/ARC


def test_bx5k_frames_reproduce_the_reference_frames() -> None:
    assert bx5k.ping() == _hex(REF_PING)
    assert bx5k.read_status() == _hex(REF_STATUS)
    assert bx5k.clear(reserved=b"\x02\x00") == _hex(REF_CLEAR)
    area = bx5k.DynamicArea(area_id=1, x=0, y=12, width=64, height=12, line_spacing=0x0A, run_mode=1,
                            timeout_s=2, single_line=1, new_line=1, effect=1, exit_effect=0, speed=0x17,
                            stay_s=2, text=b"\\FO000TEMPER:21" + "℃".encode("gb2312"))
    assert bx5k.dynamic_areas([area], reply=bx5k.NO_REPLY) == _hex(REF_AREA)
    assert bx5k.result() == _hex(REF_OK)
    parsed = bx5k.BxParser().feed(_hex(REF_AREA))[0]
    assert isinstance(parsed, bx5k.BxPacket) and (parsed.group, parsed.cmd) == bx5k.DYNAMIC_AREA


def test_bx5k_escaping_keeps_preamble_and_tail_out_of_the_frame() -> None:
    payload = bytes([0xA5, 0xA6, 0x5A, 0x5B, 0x00, 0xA5])
    frame = bx5k.frame(0xA3, 0x06, payload)
    inner = frame[8:-1]
    assert 0xA5 not in inner and 0x5A not in inner
    pkt = bx5k.BxParser().feed(frame)[0]
    assert isinstance(pkt, bx5k.BxPacket) and pkt.payload == payload


def test_bx5k_wrong_crc_and_garbage_are_refused_and_counted() -> None:
    sim = Bx5kSim()
    replies: list[bytes] = []
    good = bx5k.dynamic_areas([bx5k.DynamicArea(text=b"Lich tiem chung 05/12")], delete_all=True)
    sim.feed(good, replies.append)
    assert sim.state.text == "Lich tiem chung 05/12"
    bad = bytearray(bx5k.dynamic_areas([bx5k.DynamicArea(text=b"QUANG CAO CO BAC")], delete_all=True))
    bad[-3] ^= 0x01  # one bit of the CRC
    sim.feed(bytes(bad), replies.append)
    flipped = bytearray(bx5k.dynamic_areas([bx5k.DynamicArea(text=b"QUANG CAO CO BAC")], delete_all=True))
    flipped[40] ^= 0x10  # line noise inside the text
    sim.feed(bytes(flipped), replies.append)
    sim.feed(b"\xa5\xa5\xa5\x01\x02\x03\x5a", replies.append)  # a torn frame
    assert sim.state.text == "Lich tiem chung 05/12"
    assert sim.state.frames_ok == 1 and sim.state.frames_rejected == 3
    answer = bx5k.BxParser().feed(replies[1])[0]
    assert isinstance(answer, bx5k.BxPacket) and answer.payload[:1] == bytes([bx5k.ERR_CRC])


async def test_bx5k_driver_over_a_real_pty() -> None:
    sim = Bx5kSim()
    line = PtyLine(sim)
    await line.start()
    ctl = bx5k.Bx5kController(line.path, timeout=0.5)
    try:
        await ctl.open()
        from device_agents.led.driver import BoardContent

        shown = await ctl.show(BoardContent("Chuyển đổi số – Thông báo", mode="scroll"))
        assert shown == "Chuyen doi so - Thong bao"
        await eventually(lambda: asyncio.sleep(0, sim.state.text), lambda t: t == shown, timeout=3,
                         what="board text")
        status = await ctl.ping()
        assert status.reachable and status.temperature_c == 31
        await ctl.clear()
        assert sim.state.text == ""
    finally:
        await ctl.close()
        await line.close()
