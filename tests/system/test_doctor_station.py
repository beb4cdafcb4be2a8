"""Issue 6: `communecast agent doctor` on an enrolled, simulated station — every check
passes on a healthy one, and a dead RS-485 bus or a retired account fails with a clear
line and a non-zero exit. Real broker, real controller, firmware_sim cabinet on a TCP
serial line, ALSA's null device."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from device_agents.common.config import AgentConfig
from firmware_sim.station import SimStationHardware
from testkit.harness import System
from tests.system.test_enroll_flow import cli, fingerprint, new_code, new_station


async def enrolled_dir(system: System, tmp_path: Path) -> tuple[dict, Path]:
    device = await new_station(system, "Cụm loa thôn Tây")
    code = (await new_code(system, device["id"]))["code"]
    data_dir = tmp_path / "pi"
    rc, _, err = await cli("agent", "enroll", "--controller", system.base_url, "--code", code,
                           "--key-fingerprint", fingerprint(system), "--data-dir", str(data_dir))
    assert rc == 0, err
    return device, data_dir


@pytest.mark.skipif(shutil.which("aplay") is None, reason="alsa-utils (aplay) is not installed")
async def test_doctor_checks_a_simulated_station(system: System, tmp_path: Path) -> None:
    device, data_dir = await enrolled_dir(system, tmp_path)
    async with SimStationHardware(transport="tcp") as hw:
        path = data_dir / "config.json"
        config = AgentConfig.load(path)
        config.model_copy(update={"modbus_url": hw.modbus_url, "audio_device": "null"}).save(path)

        rc, out, err = await cli("agent", "doctor", "--data-dir", str(data_dir), "--lang", "en")
        assert rc == 0, out + err
        lines = out.splitlines()
        assert lines[0] == f"Checking station {device['uid']}" and lines[-1] == "All checks passed."
        for title in ("MQTT broker", "Station credentials", "Clock", "Audio device", "RS-485 serial port",
                      "Modbus devices", "Free disk space", "Configuration file"):
            assert any(line.startswith("[ OK ]") and title in line for line in lines), (title, out)
        assert any("mains 230 V" in line for line in lines), out

        hw.faults.set("no_reply", True)  # the RS-485 cable is unplugged
        rc, out, _ = await cli("agent", "doctor", "--data-dir", str(data_dir))
        assert rc == 1
        modbus = next(line for line in out.splitlines() if "Thiết bị Modbus" in line)
        assert modbus.startswith("[LỖI]") and "không trả lời" in modbus
        assert out.splitlines()[-1] == "1 mục có lỗi."
        hw.faults.set("no_reply", False)

    r = await system.api("POST", f"/api/v1/devices/{device['id']}/retire")
    assert r.status_code == 200
    rc, out, _ = await cli("agent", "doctor", "--data-dir", str(data_dir), "--sim")
    assert rc == 1
    creds = next(line for line in out.splitlines() if "Tài khoản của trạm" in line)
    assert creds.startswith("[LỖI]") and "kích hoạt lại" in creds
