"""A CPU quota for one process tree: a cgroup capped at a fraction of one core.

`bench agent` runs a station agent the way a Raspberry-Pi-class board would hold it. The cap
is a CFS bandwidth limit (quota per 100 ms period), which throttles the tree to `fraction` of
one core on average, including the ffmpeg decodes it starts (children stay in the group).
cgroup v1 (`/sys/fs/cgroup/cpu/`, this machine) and v2 (`cpu.max`) are both handled; where
neither is writable (no root, a read-only cgroupfs) the caller is told why and runs
unthrottled, and says so in its result.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 100_000
V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")


@dataclass
class CpuQuota:
    group: Path
    fraction: float
    version: int

    @classmethod
    def create(cls, name: str, fraction: float) -> CpuQuota:
        """A new group capped at `fraction` of a core; OSError (with the reason) when impossible."""
        if not 0.01 <= fraction <= 64:
            raise ValueError("the CPU fraction must be between 0.01 and 64 cores")
        quota = int(PERIOD_US * fraction)
        if (V1 / "cpu.cfs_quota_us").exists():
            group = V1 / name
            group.mkdir(exist_ok=True)
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
            return cls(group, fraction, 1)
        if "cpu" in (V2 / "cgroup.controllers").read_text().split():
            group = V2 / name
            group.mkdir(exist_ok=True)
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            return cls(group, fraction, 2)
        raise OSError("no writable cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 cpu.max)")

    def add(self, pid: int) -> None:
        (self.group / "cgroup.procs").write_text(str(pid))

    def throttled_s(self) -> float:
        """Time the group spent throttled (waiting for its next period's quota)."""
        for line in (self.group / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_time":  # v1, nanoseconds
                return int(value) / 1e9
            if key == "throttled_usec":  # v2
                return int(value) / 1e6
        return 0.0

    def remove(self) -> None:
        """Move what is left to the parent group, then delete this one."""
        parent = self.group.parent / "cgroup.procs"
        with contextlib.suppress(OSError):
            for pid in (self.group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    parent.write_text(pid)
        with contextlib.suppress(OSError):
            os.rmdir(self.group)
