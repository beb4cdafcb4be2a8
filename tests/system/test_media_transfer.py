"""Media over HTTP: Range requests, resumed downloads, and a tampered file never reaching
the horn. Real controller process, SQLite (the storage path does not depend on the DB)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from device_agents.common.media_cache import MediaCache, MediaError
from protocol.messages import MediaRef
from testkit.api import Api
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone


@pytest.fixture
def controller(sqlite_system: System) -> System:
    return sqlite_system


async def _upload(system: System, path: Path) -> MediaRef:
    body = await Api.of(system).upload(path)
    return MediaRef(sha256=body["sha256"], size=body["size"], duration_s=body["duration_s"])


async def test_range_requests_and_resumed_download(controller: System, tmp_path: Path) -> None:
    ref = await _upload(controller, tone(tmp_path / "t.wav", seconds=3))
    async with httpx.AsyncClient(base_url=controller.base_url) as http:
        whole = (await http.get(f"/media/{ref.sha256}")).content
        part = await http.get(f"/media/{ref.sha256}", headers={"Range": "bytes=100-"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-{ref.size - 1}/{ref.size}"
    assert part.content == whole[100:]

    cache = MediaCache(tmp_path / "cache", controller.base_url)
    half = ref.size // 2
    (tmp_path / "cache" / f"{ref.sha256}.part").write_bytes(whole[:half])  # a broken 4G download
    path = await cache.ensure(ref)
    assert path.read_bytes() == whole
    assert cache.bytes_downloaded == ref.size - half  # only the rest crossed the network
    assert await cache.ensure(ref) == path and cache.bytes_downloaded == ref.size - half


async def test_tampered_media_is_refused_and_never_cached(controller: System, tmp_path: Path) -> None:
    ref = await _upload(controller, tone(tmp_path / "t.wav", seconds=2))
    stored = next((controller.root / "controller" / "media").rglob(f"{ref.sha256}.opus"))
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a compromised mirror or a flipped bit on disk
    stored.write_bytes(bytes(data))
    cache = MediaCache(tmp_path / "cache", controller.base_url)
    with pytest.raises(MediaError, match="could not fetch"):
        await cache.ensure(ref, attempts=2)
    assert not cache.has(ref)
    assert list((tmp_path / "cache").iterdir()) == []


async def test_healthz_follows_the_broker(controller: System) -> None:
    async def health() -> int:
        return (await controller.api("GET", "/healthz", auth=False)).status_code

    assert await health() == 200
    controller.broker.stop()
    await eventually(health, lambda s: s == 503, timeout=10, what="503 with the broker down")
    controller.broker.start()
    await eventually(health, lambda s: s == 200, timeout=15, what="200 after the broker is back")


async def test_healthz_sees_a_frozen_broker_within_5_s(controller: System, tmp_path: Path) -> None:
    """SIGSTOP keeps the broker's socket open and answers nothing: only the round-trip probe
    (controller/mqtt/bus.py) can tell, well before the 30 s keepalive would. A broadcast
    created meanwhile is saved (201) and its answer says the stations will hear of it late."""
    async def health() -> httpx.Response:
        return await controller.api("GET", "/healthz", auth=False)

    api = Api.of(controller)
    await controller.add_stations(1)
    media = await api.upload(tone(tmp_path / "t.wav", seconds=2))
    await eventually(health, lambda r: r.status_code == 200, timeout=15, what="healthy first")
    in_time = await api.send(media, datetime.now(UTC) + timedelta(minutes=5), {"all": True})
    assert "warnings" not in in_time
    body = (await health()).json()
    assert body["mqtt"] == "ok" and body["mqtt_round_trip_ms"] is not None
    assert isinstance(body["publish_backlog"], int)
    controller.broker.freeze()
    try:
        frozen_at = time.monotonic()
        down = await eventually(health, lambda r: r.status_code == 503, timeout=8, what="503 while frozen")
        noticed_s = time.monotonic() - frozen_at
        assert down.json()["mqtt"] == "down" and down.json()["database"] == "ok"
        assert noticed_s <= 5.0, f"the frozen broker was noticed after {noticed_s:.1f} s"
        late = await api.send(media, datetime.now(UTC) + timedelta(minutes=5), {"all": True},
                              title="Gửi khi máy chủ MQTT treo")  # fmt: skip
        assert late["stations"] == 1
        assert late["warnings"] and "không trả lời" in late["warnings"][0]
    finally:
        controller.broker.thaw()
    await eventually(health, lambda r: r.status_code == 200, timeout=15, what="200 once it answers again")
