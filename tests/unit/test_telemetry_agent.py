"""What a station measures about itself (device_agents/common/health.py), read from files laid
out like a Pi's /sys and /proc, and the simulator's fault control over HTTP/JSON."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from device_agents.common import health
from firmware_sim.faults import CLOCK_DRIFT_S, DriftingClock, FaultControl, Faults

ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask
wwan0\t00000000\t0100A8C0\t0003\t0\t0\t700\t00000000
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000
wlan0\t0000A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF
"""
WIRELESS = """Inter-| sta-|   Quality        |   Discarded packets
 face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22
 wlan0: 0000   54.  -56.  -256        0      0      0      0     12        0
"""


def test_health_from_pi_like_files(tmp_path: Path) -> None:
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("61234\n")
    assert health.cpu_temp_c(tmp_path / "thermal") == 61.2
    assert health.cpu_temp_c(tmp_path / "nothing") is None
    (tmp_path / "route").write_text(ROUTES)
    (tmp_path / "wireless").write_text(WIRELESS)
    iface = health.default_interface(tmp_path / "route")
    assert iface == "wlan0"  # lowest metric wins
    assert health.net_type(iface) == "wifi" and health.net_type("eth0") == "ethernet"
    assert health.net_type("wwan0") == "cellular" and health.net_type(None) is None
    assert health.wifi_signal_dbm("wlan0", tmp_path / "wireless") == -56.0
    free = health.disk_free_mb(tmp_path)
    assert free is not None and free > 0
    assert health.disk_free_mb(tmp_path / "missing") is None


async def test_cellular_rssi_from_mmcli_and_never_failing(tmp_path: Path) -> None:
    fake = tmp_path / "mmcli"  # stands in for ModemManager's CLI: prints its key-value output
    fake.write_text("#!/bin/sh\necho 'modem.signal.lte.rssi                  : -71.00'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert await health.cellular_rssi_dbm(str(fake)) == -71.0
    assert await health.cellular_rssi_dbm(str(tmp_path / "absent")) is None
    snap = await health.collect(tmp_path)  # on this machine, whatever it has; never raises
    assert snap.disk_free_mb is not None and set(snap.as_telemetry()) == {
        "cpu_temp_c", "disk_free_mb", "net_type", "net_signal_dbm"}


async def test_fault_control_over_http() -> None:
    faults = {"spk-1": Faults(), "spk-2": Faults()}
    control = FaultControl(lambda: faults).start()
    try:
        async with httpx.AsyncClient(base_url=control.url) as http:
            r = await http.post("/faults/spk-1", content=json.dumps({"mains_loss": True}))
            assert r.status_code == 200 and r.json()["spk-1"]["mains_loss"] is True
            assert faults["spk-1"].mains_loss and not faults["spk-2"].mains_loss
            r = await http.post("/faults/all", json={"clock_drift": True})
            assert all(f.clock_drift for f in faults.values())
            assert (await http.post("/faults/spk-1", json={"flood": True})).status_code == 400
            assert (await http.post("/faults/spk-1", json={"overheat": "yes"})).status_code == 400
            assert (await http.post("/faults/spk-9", json={})).status_code == 404
            assert (await http.get("/faults")).json()["spk-2"]["clock_drift"] is True
    finally:
        control.close()
    clock = DriftingClock(faults["spk-1"])
    drift = clock.time() - DriftingClock(Faults()).time()
    assert abs(drift - CLOCK_DRIFT_S) < 0.01
