"""Issue 18: a reconnect after a broker restart costs a station nothing it already has. The
broker hands back the retained desired state; the station recognises it (same version, same
envelope id: device_agents/host/host.py) and neither acknowledges it again nor downloads its
media again. Only what is new after the restart is acknowledged."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from testkit.api import Api
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone


@pytest.fixture
def controller(sqlite_system: System) -> System:
    return sqlite_system  # the station's side is under test: one database kind is enough


async def test_a_reconnect_neither_re_acknowledges_nor_re_downloads(
    controller: System, tmp_path: Path
) -> None:
    api = Api.of(controller)
    stations = await controller.add_stations(2)
    media = await api.upload(tone(tmp_path / "t.wav", seconds=2))
    first = await api.send(media, datetime.now(UTC) + timedelta(minutes=10), {"all": True})
    await api.wait_for_acks(first["id"], 2)
    caches = [st.running.agent.role.media for st in stations]
    await eventually(lambda: _async([c.bytes_downloaded for c in caches]),
                     lambda got: all(n >= media["size"] for n in got), timeout=15,
                     what="both stations cached the media")  # fmt: skip
    downloaded = [c.bytes_downloaded for c in caches]
    links = [st.running.agent.link for st in stations]
    connected_before = [link.connected_at for link in links]

    controller.broker.stop()
    controller.broker.start()
    def reconnected(now: list[float | None]) -> bool:
        return all(a is not None and a != b for a, b in zip(now, connected_before, strict=True))

    await eventually(lambda: _async([link.connected_at for link in links]), reconnected,
                     timeout=30, what="both stations reconnected")  # fmt: skip
    # Something new after the restart: once it is acknowledged, the retained state (which the
    # broker delivers first on the same topic) has been seen and passed over.
    second = await api.send(media, datetime.now(UTC) + timedelta(minutes=11), {"all": True})
    await api.wait_for_acks(second["id"], 2, timeout=20)

    for st in stations:
        acks = await api.json("GET", f"/api/v1/devices/{st.device_id}/events", params={"kind": "ack"})
        per_envelope = Counter(a["ref"] for a in acks)
        assert per_envelope and max(per_envelope.values()) == 1, per_envelope
    assert [c.bytes_downloaded for c in caches] == downloaded


async def _async(value: object) -> object:
    return value
