"""`sim fleet --processes P`: stations split over spawned workers, figures aggregated, clean stop.

Real: a private Mosquitto with one password-file account per station, real speaker stations
in two worker processes. Provisioning through the controller is `sim fleet`'s other half and
is exercised by the single-process path; here the configs are made directly.
"""

from __future__ import annotations

from pathlib import Path

from firmware_sim.fleet_workers import FleetProcesses, split
from tests.support.station_broker import started_broker_with_stations


def test_split_is_contiguous_and_never_empty() -> None:
    assert split(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert split(list(range(2)), 4) == [[0], [1]]
    assert [len(c) for c in split(list(range(10_000)), 3)] == [3334, 3333, 3333]


def test_fleet_over_two_processes_connects_reports_and_stops(tmp_path: Path) -> None:
    uids = [f"spk-mp{i:03d}" for i in range(6)]
    broker, configs = started_broker_with_stations(tmp_path, uids, "fleet-test-password")
    fleet = FleetProcesses(configs, 2)
    try:
        figures = fleet.start(timeout=60)
        assert figures["processes"] == 2 and figures["devices"] == 6
        assert figures["connected"] == 6 and fleet.all_connected()
        assert figures["rss_per_station_kb"] > 0 and figures["fds_per_station"] >= 1
        pids = {w["pid"] for w in fleet.workers.values()}
        assert len(pids) == 2  # its own process (and event loop) each
        procs = list(fleet._procs)
    finally:
        fleet.stop(timeout=30)
        broker.stop()
    assert all(not p.is_alive() and p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
