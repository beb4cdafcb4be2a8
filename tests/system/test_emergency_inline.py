"""Issue 21 item 2 ("new audio on air within seconds"), real broker and controller (SQLite: the
database kind plays no part): a fresh short clip travels inside the signed emergency PLAY and
plays on stations that never fetched it with zero HTTP media downloads, while the stations'
desired state names it by reference only; a clip over the limit keeps the HTTP path; a station on
an agent older than the field refuses the PLAY and still plays the emergency through its desired
state (docs/emergency.md, "Audio inside the PLAY"; docs/protocol.md, "Media")."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from pydantic import BaseModel, ConfigDict

from device_agents.speaker import role as speaker_role
from protocol.envelope import SignedMessage
from protocol.limits import INLINE_MEDIA_MAX_BYTES
from protocol.messages import PlayCommand
from protocol.signing import b64u_decode
from testkit.api import Api
from testkit.harness import CONTROLLER_USER, Station, System
from testkit.waiting import eventually
from tests.support.audio import tone

REPEAT = "FREQ=HOURLY;INTERVAL=2;BYMINUTE=0;BYSECOND=0"


class Wire:
    """A real MQTT subscriber on cc/v1/#: every controller message, opened (not verified)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.ready = asyncio.Event()

    async def run(self, system: System) -> None:
        async with aiomqtt.Client("127.0.0.1", system.broker.port, username=CONTROLLER_USER,
                                  password=system.mqtt_password, max_queued_incoming_messages=0,
                                  identifier=f"test-wire-{secrets.token_hex(4)}") as client:
            await client.subscribe("cc/v1/#", qos=1)
            self.ready.set()
            async for msg in client.messages:
                self.messages.append((msg.topic.value, bytes(msg.payload)))  # type: ignore[arg-type]

    def envelopes(self, suffix: str) -> list[tuple[str, dict[str, Any], int]]:
        """(topic, envelope, wire bytes) of every message on a topic ending with `suffix`."""
        out = []
        for topic, payload in self.messages:
            if topic.endswith(suffix) and payload:
                env = json.loads(b64u_decode(SignedMessage.model_validate_json(payload).payload))
                out.append((topic, env, len(payload)))
        return out

    def plays(self, item_id: str) -> list[tuple[str, dict[str, Any], int]]:
        return [(t, e, n) for t, e, n in self.envelopes("/cmd")
                if e["kind"] == "play" and e["body"]["item"]["item_id"] == item_id]


@contextlib.asynccontextmanager
async def wire(system: System) -> AsyncIterator[Wire]:
    w = Wire()
    task = asyncio.create_task(w.run(system))
    try:
        async with asyncio.timeout(10):
            await w.ready.wait()
        yield w
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def media_served(system: System) -> float:
    """The controller's own count of GET /media/<sha> it answered (Prometheus, loopback)."""
    text = (await system.api("GET", "/metrics", auth=False)).text
    found = re.search(r"^communecast_media_served_total ([0-9.e+]+)$", text, re.M)
    assert found, "communecast_media_served_total missing from /metrics"
    return float(found.group(1))


async def online(system: System, n: int) -> list[Station]:
    stations = await system.add_stations(n)
    await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                     lambda ds: sum(d["online"] for d in ds) == len(system.stations), timeout=30,
                     what="stations online")  # fmt: skip
    return stations


def stored_file(system: System, sha: str) -> bytes:
    return next((system.root / "controller" / "media").rglob(f"{sha}.opus")).read_bytes()


async def test_a_fresh_short_clip_plays_everywhere_with_no_download(
    sqlite_system: System, tmp_path: Path
) -> None:
    system = sqlite_system
    stations = await online(system, 3)
    media = await Api.of(system).upload(tone(tmp_path / "siren.wav", freq=880, seconds=3.0))
    assert media["size"] <= INLINE_MEDIA_MAX_BYTES
    served = await media_served(system)
    async with wire(system) as w:
        r = await system.api("POST", "/api/v1/broadcasts", json={
            "title": "Cảnh báo lũ quét khẩn cấp", "media_sha256": media["sha256"], "targets": {"all": True},
            "priority": "emergency", "repeat": REPEAT})  # fmt: skip
        assert r.status_code == 201, r.text
        bc = r.json()
        item_id = f"b{bc['id']}"
        assert "audio inside the PLAY" in bc["emergency"]["lead_basis"], bc["emergency"]
        assert "media fetch" not in bc["emergency"]["lead_basis"]
        for st in stations:  # none of them had it: it came inside the PLAY
            p = await st.sink.wait_for(lambda p: any(media["sha256"] in f for f in p.files), timeout=30)
            assert p.completed and p.volume == 100
        # One signed PLAY on grp/all carrying the stored file's exact bytes.
        ((topic, env, size),) = w.plays(item_id)
        assert topic == "cc/v1/grp/all/cmd"
        (ref,) = env["body"]["item"]["media"]
        assert base64.b64decode(ref["inline"]) == stored_file(system, media["sha256"])
        assert size < 2.2 * media["size"] + 4096  # base64 inside base64url: ~16/9 of the clip
        # The desired states (sent for the repeat, retained) name the same audio by reference only.
        repeats = f"s{bc['emergency']['schedule_id']}@"

        def with_repeats() -> set[str]:
            return {t for t, e, _ in w.envelopes("/desired")
                    if any(i["item_id"].startswith(repeats) for i in e["body"]["schedule"])}

        await eventually(lambda: _aw(with_repeats()), lambda topics: len(topics) == 3, timeout=20,
                         what="desired states with the repeats")
        for _, env, _ in w.envelopes("/desired"):
            refs = [m for i in env["body"]["schedule"] for m in i["media"]]
            assert all(set(m) == {"sha256", "size", "duration_s"} for m in refs)  # never `inline`
    for st in stations:
        cache = st.running.agent.role.media
        assert (cache.downloads, cache.bytes_downloaded, cache.stored_inline) == (0, 0, 1)
    assert await media_served(system) == served  # zero HTTP media downloads from the controller
    detail = await eventually(lambda: system.api_json("GET", f"/api/v1/broadcasts/{bc['id']}"),
                              lambda b: b["counts"].get("played") == 3, timeout=20, what="played")
    assert {s["state"] for s in detail["station_states"]} == {"played"}
    assert (await system.api("POST", f"/api/v1/broadcasts/{bc['id']}/cancel")).status_code == 200


async def test_a_clip_over_the_limit_keeps_the_http_path(sqlite_system: System, tmp_path: Path) -> None:
    system = sqlite_system
    stations = await online(system, 2)
    media = await Api.of(system).upload(tone(tmp_path / "long.wav", freq=660, seconds=30.0))
    assert media["size"] > INLINE_MEDIA_MAX_BYTES, media["size"]  # a pure tone: ~6.2 kB/s stored
    served = await media_served(system)
    async with wire(system) as w:
        r = await system.api("POST", "/api/v1/broadcasts", json={
            "title": "Cảnh báo bão", "media_sha256": media["sha256"], "targets": {"all": True},
            "priority": "emergency"})  # fmt: skip
        assert r.status_code == 201, r.text
        bc = r.json()
        assert "media fetch" in bc["emergency"]["lead_basis"]
        assert "inside the PLAY" not in bc["emergency"]["lead_basis"]
        await eventually(lambda: system.api_json("GET", f"/api/v1/broadcasts/{bc['id']}"),
                         lambda b: b["counts"].get("playing") == 2, timeout=30, what="on air")
        ((_, env, size),) = w.plays(f"b{bc['id']}")
        assert all("inline" not in m for m in env["body"]["item"]["media"]) and size < 4096
    assert (await system.api("POST", f"/api/v1/broadcasts/{bc['id']}/cancel")).status_code == 200
    for st in stations:
        await st.sink.wait_for(lambda p: any(media["sha256"] in f for f in p.files), timeout=20)
        cache = st.running.agent.role.media
        assert cache.downloads >= 1 and cache.bytes_downloaded == media["size"] and cache.stored_inline == 0
    assert await media_served(system) >= served + 2


class _MediaRefBeforeInline(BaseModel):
    """MediaRef as agents before issue 21 read it: strict, no `inline`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sha256: str
    size: int
    duration_s: float


class _PlayCommandBeforeInline:
    """An agent older than audio inside the PLAY: a MediaRef with `inline` does not validate."""

    @staticmethod
    def model_validate(body: dict[str, Any]) -> PlayCommand:
        for ref in body["item"]["media"]:
            _MediaRefBeforeInline.model_validate(ref)  # ValidationError: "Extra inputs are not permitted"
        return PlayCommand.model_validate(body)


async def test_an_older_agent_refuses_the_play_and_plays_it_through_its_desired_state(
    sqlite_system: System, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rolled out controller first, agents after (docs/operations.md): a station that cannot read
    the PLAY reports it `malformed`; the controller sends it its desired state, which names the
    item by reference, and it plays the emergency (late, by the round trip and the download)."""
    system = sqlite_system
    monkeypatch.setattr(speaker_role, "PlayCommand", _PlayCommandBeforeInline)
    stations = await online(system, 2)
    media = await Api.of(system).upload(tone(tmp_path / "fire.wav", freq=990, seconds=2.0))
    r = await system.api("POST", "/api/v1/broadcasts", json={
        "title": "Cháy rừng", "media_sha256": media["sha256"], "targets": {"all": True},
        "priority": "emergency"})  # fmt: skip
    assert r.status_code == 201, r.text
    bc = r.json()
    assert "audio inside the PLAY" in bc["emergency"]["lead_basis"]
    for st in stations:
        p = await st.sink.wait_for(lambda p: any(media["sha256"] in f for f in p.files), timeout=40)
        assert p.completed
        assert st.running.agent.rejections == {"malformed": 1}
        cache = st.running.agent.role.media
        assert cache.stored_inline == 0 and cache.downloads >= 1  # by HTTP, as before the field
    detail = await eventually(lambda: system.api_json("GET", f"/api/v1/broadcasts/{bc['id']}"),
                              lambda b: b["counts"].get("played") == 2, timeout=20, what="played")
    assert {s["state"] for s in detail["station_states"]} == {"played"}


async def _aw(value: object) -> object:
    return value
