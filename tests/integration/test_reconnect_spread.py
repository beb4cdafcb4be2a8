"""After a broker restart, 200 stations come back spread out, not in lockstep (issue 18).

Real: a private Mosquitto with one password-file account per station and 200 speaker agents
(the fleet simulator, one event loop). The broker is stopped under them and started again on
the same port; each station's reconnect instant (`AgentLink.connected_at`) is recorded. With
the old fixed ladder (0.2, 0.4, 0.8 … s) every station retried at the same instants; with
full jitter (mqtt_adapter/backoff.py) they spread over the window.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from firmware_sim.fleet import Fleet
from testkit.timing import busiest_window
from testkit.waiting import eventually
from tests.support.station_broker import started_broker_with_stations

STATIONS = 200
SLICE_S = 0.1


async def _tick() -> None:
    await asyncio.sleep(0)


async def test_two_hundred_stations_come_back_spread_after_a_broker_restart(tmp_path: Path) -> None:
    uids = [f"spk-rc{i:03d}" for i in range(STATIONS)]
    broker, configs = started_broker_with_stations(tmp_path, uids, "reconnect-test-password")
    fleet = Fleet(configs)
    try:
        await fleet.start(connect_timeout=120)
        links = [st.agent.link for st in fleet.stations]
        assert all(link.connections == 1 for link in links)

        broker.stop()
        await eventually(_tick, lambda _: fleet.connected() == 0, timeout=60,
                         what="every station to notice the broker is gone")  # fmt: skip
        back_up = time.time()
        broker.start()
        await eventually(_tick, lambda _: fleet.connected() == STATIONS, timeout=90,
                         what=f"all {STATIONS} stations back")  # fmt: skip
    finally:
        await fleet.stop()
        broker.stop()

    assert [link.connections for link in links] == [2] * STATIONS  # none gave up, none flapped
    instants = [t for t in (link.connected_at for link in links) if t is not None]
    assert len(instants) == STATIONS and min(instants) >= back_up
    busiest = busiest_window(instants, SLICE_S)
    spread = max(instants) - min(instants)
    print(f"{STATIONS} stations back within {max(instants) - back_up:.2f} s of the broker's start; "
          f"busiest {SLICE_S * 1000:.0f} ms: {busiest}; first to last {spread:.2f} s")
    assert busiest < STATIONS * 2 // 3, f"{busiest} of {STATIONS} stations reconnected within {SLICE_S} s"
    assert busiest <= STATIONS // 4, f"lockstep: {busiest} of {STATIONS} within {SLICE_S} s"
