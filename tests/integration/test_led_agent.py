"""The LED agent against simulated controllers on real serial lines (no broker needed:
events wait in the agent's outbox, which is exactly what the controller later receives)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_agents.common.config import AgentConfig
from device_agents.host.host import StationHost
from device_agents.led.bx5k import Bx5kController
from device_agents.led.content import brightness_at, choose
from device_agents.led.role import LedRole, led_station
from firmware_sim.led.server import SimLedBoard
from protocol.messages import BrightnessStep, LedContent, LedMessage, Priority
from protocol.signing import KeyPair
from testkit.waiting import eventually

NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


def _config(tmp: Path, **kw: object) -> AgentConfig:
    key = KeyPair.generate()
    return AgentConfig(uid="led-test", kind="led", mqtt_port=1, controller_url="http://127.0.0.1:1",
                       controller_public_keys=[key.public_text], data_dir=tmp, led_protocol="bx5k",
                       led_backoff_max_s=2.0, led_ping_s=0.3, **kw)  # type: ignore[arg-type]


def _events(agent: StationHost[LedRole]) -> list[dict[str, object]]:
    return [json.loads(e.payload) for e in agent.store.outbox_head(1000)]


def test_choice_follows_windows_priority_and_night_dimming() -> None:
    content = LedContent(messages=[
        LedMessage(item_id="l1", text="Lịch tiêm chủng", end_at=NOW + timedelta(hours=1)),
        LedMessage(item_id="l2", text="Hết hạn", end_at=NOW - timedelta(seconds=1)),
        LedMessage(item_id="l3", text="Chưa tới", start_at=NOW + timedelta(minutes=5)),
    ], brightness=[BrightnessStep(at="05:00", percent=100), BrightnessStep(at="22:00", percent=40)])
    shown = choose(content, NOW)
    assert shown is not None and shown.text == "Lịch tiêm chủng"
    storm = content.model_copy(update={"messages": [*content.messages, LedMessage(
        item_id="l4", text="Bão số 9: sơ tán ngay", priority=Priority.EMERGENCY)]})
    assert choose(storm, NOW).text == "Bão số 9: sơ tán ngay"  # type: ignore[union-attr]
    assert brightness_at(content, datetime(2026, 12, 5, 1, 0, tzinfo=UTC)) == 100  # 08:00 in Hà Nội
    assert brightness_at(content, datetime(2026, 12, 5, 16, 30, tzinfo=UTC)) == 40  # 23:30
    assert brightness_at(content, datetime(2026, 12, 4, 21, 0, tzinfo=UTC)) == 40  # 04:00 next day


async def test_silent_controller_is_backed_off_reported_and_gets_its_content_back(tmp_path: Path) -> None:
    hw = SimLedBoard("bx5k", tmp_path / "sim", transport="pty")
    await hw.start()
    agent = led_station(_config(tmp_path), Bx5kController(hw.url, timeout=0.3, retries=0), tick_s=0.1)
    agent.role.content = LedContent(messages=[LedMessage(item_id="l1", text="Thông báo lịch tiêm chủng")])
    await agent.start()
    board = hw.board
    try:
        await eventually(_async(lambda: board.state.text), lambda t: t == "Thong bao lich tiem chung",
                         timeout=5, what="text on the board")
        board.faults.no_reply = True  # the controller stops answering (cable, crashed firmware)
        await eventually(_async(lambda: agent.role.reachable), lambda r: r is False, timeout=5,
                         what="agent notices")
        faults = [e for e in _events(agent) if e["kind"] == "fault"]
        assert faults and faults[0]["reason"] == "led_controller_unreachable"
        await eventually(_async(lambda: len(agent.role.retry_delays)), lambda n: n >= 3, timeout=10,
                         what="a few retries")
        assert agent.role.retry_delays[:3] == [1.0, 2.0, 2.0]  # doubling, capped (led_backoff_max_s)
        board.reboot()  # and while it was away it lost its RAM content
        assert board.state.text == ""
        ok_before = board.state.frames_ok
        board.faults.no_reply = False
        await eventually(_async(lambda: board.state.text), lambda t: t == "Thong bao lich tiem chung",
                         timeout=6, what="content re-sent after recovery")
        assert board.state.frames_ok > ok_before
        await eventually(_async(lambda: agent.role.reachable), lambda r: r is True, timeout=3,
                         what="reachable")
        kinds = [(e["kind"], e["reason"]) for e in _events(agent)]
        assert ("fault", "led_controller_recovered") in kinds
        assert [k for k in kinds if k == ("fault", "led_controller_unreachable")] == [
            ("fault", "led_controller_unreachable")]  # one report per outage, not one per retry
        state = json.loads((tmp_path / "sim" / "state.json").read_text())
        assert state["text"] == "Thong bao lich tiem chung" and state["reboots"] == 1
    finally:
        await agent.stop()
        await hw.close()


def _async(fn):  # type: ignore[no-untyped-def]
    async def probe():  # type: ignore[no-untyped-def]
        return fn()

    return probe
