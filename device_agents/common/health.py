"""System health a station reports with its telemetry (docs/health.md).

Everything here is best effort: a value that cannot be read is None, never an error, so
a missing sensor or tool never stops telemetry. Linux sources, no extra packages:

- CPU temperature: /sys/class/thermal/thermal_zone*/temp (millidegrees; the Pi's SoC);
- free disk: os.statvfs of the agent's data dir (media cache and store live there);
- network: the interface of the default route in /proc/net/route -> ethernet (eth*, en*),
  wifi (wlan*, wl*; signal from /proc/net/wireless), cellular (wwan*, usb*, ppp*, rmnet*);
- 4G signal: ModemManager's `mmcli` (fixed arguments, no shell), only if it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

THERMAL = Path("/sys/class/thermal")
PROC_ROUTE = Path("/proc/net/route")
PROC_WIRELESS = Path("/proc/net/wireless")
MMCLI_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Health:
    cpu_temp_c: float | None = None
    disk_free_mb: float | None = None
    net_type: str | None = None  # ethernet | wifi | cellular | other
    net_signal_dbm: float | None = None

    def as_telemetry(self) -> dict[str, Any]:
        return asdict(self)


def cpu_temp_c(thermal: Path = THERMAL) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for zone in sorted(thermal.glob("thermal_zone*")):
            raw = (zone / "temp").read_text().strip()
            if raw:
                return round(int(raw) / 1000.0, 1)
    return None


def disk_free_mb(path: Path) -> float | None:
    with contextlib.suppress(OSError):
        st = os.statvfs(path)
        return round(st.f_bavail * st.f_frsize / 1_048_576, 1)
    return None


def default_interface(route: Path = PROC_ROUTE) -> str | None:
    """The interface of the default route (destination 00000000), lowest metric first."""
    best: tuple[int, str] | None = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in route.read_text().splitlines()[1:]:
            cols = line.split()
            if len(cols) > 6 and cols[1] == "00000000":
                metric = int(cols[6])
                if best is None or metric < best[0]:
                    best = (metric, cols[0])
    return best[1] if best else None


def net_type(interface: str | None) -> str | None:
    if not interface:
        return None
    if interface.startswith(("eth", "en")):
        return "ethernet"
    if interface.startswith(("wlan", "wl")):
        return "wifi"
    if interface.startswith(("wwan", "usb", "ppp", "rmnet", "ww")):
        return "cellular"
    return "other"


def wifi_signal_dbm(interface: str, wireless: Path = PROC_WIRELESS) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in wireless.read_text().splitlines()[2:]:
            name, _, rest = line.partition(":")
            if name.strip() == interface:
                return float(rest.split()[2].rstrip("."))
    return None


_RSSI = re.compile(r"modem\.signal\.lte\.rssi\s*:\s*(-?\d+(?:\.\d+)?)")


async def cellular_rssi_dbm(mmcli: str | None = None) -> float | None:
    """4G RSSI through ModemManager; None when mmcli is missing, slow or silent."""
    exe = mmcli or shutil.which("mmcli")
    if not exe:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, "-m", "any", "--signal-get", "-K",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), MMCLI_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None
    except OSError:
        return None
    m = _RSSI.search(out.decode(errors="replace"))
    return float(m.group(1)) if m else None


async def collect(data_dir: Path) -> Health:
    """One health snapshot; file reads in a worker thread (an SD card can be slow)."""

    def files() -> tuple[float | None, float | None, str | None]:
        return cpu_temp_c(), disk_free_mb(data_dir), default_interface()

    try:
        temp, free, iface = await asyncio.to_thread(files)
    except Exception:
        return Health()
    kind = net_type(iface)
    signal = None
    if kind == "wifi" and iface:
        signal = wifi_signal_dbm(iface)
    elif kind == "cellular":
        signal = await cellular_rssi_dbm()
    return Health(cpu_temp_c=temp, disk_free_mb=free, net_type=kind, net_signal_dbm=signal)
