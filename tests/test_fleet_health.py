"""Issue 8: a fleet process reads its host's health once for all its stations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from device_agents.common import health
from device_agents.common.health import Health
from firmware_sim.fleet import SharedHealth


async def test_stations_of_one_fleet_process_share_one_host_health_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real = health.collect

    async def counted(data_dir: Path) -> Health:
        reads.append(data_dir)
        return await real(data_dir)

    monkeypatch.setattr(health, "collect", counted)
    shared = SharedHealth(max_age_s=60)
    snaps = await asyncio.gather(*(shared.collect(tmp_path) for _ in range(50)))
    assert len(reads) == 1  # 50 telemetry reports, one read of /proc, /sys and the disk
    assert all(s is snaps[0] for s in snaps)
    assert snaps[0].disk_free_mb is not None and snaps[0].disk_free_mb > 0  # this host's real figure

    stale = SharedHealth(max_age_s=0)  # older than its age: read again
    await stale.collect(tmp_path)
    await stale.collect(tmp_path)
    assert len(reads) == 3
