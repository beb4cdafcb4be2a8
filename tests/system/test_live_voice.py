"""Issue 5 item 5 acceptance: an operator's voice over the live WebSocket reaches stations.

A known tone (1 kHz, then 2 kHz) goes into the live endpoint as real-time-paced PCM
frames, exactly as the panel's AudioWorklet sends them; two simulated stations record
every sample with the instant it sounded. The end-to-end latency (frame sent -> its first
sample sounds on the station) is printed and bounded. The whole system is real: private
Mosquitto, controller subprocess, signed desired state, the agents' HTTP stream path.
"""

from __future__ import annotations

import array
import asyncio
import json
import math
import re
import statistics
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import websockets

from firmware_sim.audio_sink import StreamRecording, dominant_hz
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.audio import tone
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, chromium_problem, shot, skip_or_fail

# Measures end-to-end live latency: run alone (scripts/test.sh), not next to other tests.
pytestmark = pytest.mark.solo

RATE = 16000
FRAME = 320  # 20 ms, as the panel sends
TONE_S = 1.5


@pytest.fixture
async def live_system(tmp_path: Path) -> AsyncIterator[System]:
    """SQLite only: the stream path does not depend on the database (test_live_db.py covers both)."""
    sys_ = System(tmp_path / "system", f"sqlite:///{tmp_path / 'controller.db'}")
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()
        print("---- controller log (tail) ----\n" + sys_.controller.log_tail(2000))


def tone_frames(freq: float, seconds: float, start_sample: int) -> list[bytes]:
    frames = []
    n = int(seconds * RATE)
    for first in range(0, n, FRAME):
        samples = array.array("h", (
            int(12000 * math.sin(2 * math.pi * freq * (start_sample + first + k) / RATE))
            for k in range(FRAME)
        ))  # fmt: skip
        frames.append(samples.tobytes())
    return frames


async def test_live_tone_reaches_stations_in_order_with_low_latency(live_system: System) -> None:
    system = live_system
    stations = await system.add_stations(2)
    session = await system.api_json("POST", "/api/v1/live", json={
        "title": "Thông báo khẩn qua micro", "targets": {"all": True}})  # fmt: skip
    assert session["stations"] == 2 and session["priority"] == "emergency"
    start_at = datetime.fromisoformat(session["start_at"]).timestamp()
    token = system.token
    url = system.base_url.replace("http://", "ws://") + session["ws_path"]
    statuses: list[dict] = []

    # Nobody else may speak or listen: no credentials, a wrong stream token.
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert refused.value.response.status_code == 403
    r = await system.api("GET", f"/api/v1/live/{session['id']}/stream", auth=False,
                         headers={"X-Stream-Token": "guessed"})
    assert r.status_code == 404

    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:

        async def read() -> None:
            async for message in ws:
                statuses.append(json.loads(message))

        reader = asyncio.create_task(read())
        # Both stations have the signed item and are connected to the stream, and it has begun.
        await eventually(lambda: system.api_json("GET", f"/api/v1/live/{session['id']}"),
                         lambda s: s["listeners"] == 2, timeout=10, what="two stations listening")
        await asyncio.sleep(max(0.0, start_at + 0.1 - time.time()))

        frames = tone_frames(1000, TONE_S, 0) + tone_frames(2000, TONE_S, int(TONE_S * RATE))
        sent_at: list[float] = []
        t0 = time.time()
        for i, frame in enumerate(frames):  # paced like a microphone: one 20 ms frame every 20 ms
            await asyncio.sleep(max(0.0, t0 + i * FRAME / RATE - time.time()))
            sent_at.append(time.time())
            await ws.send(frame)
        total = len(frames) * FRAME
        recs: list[StreamRecording] = [
            await st.sink.wait_stream(lambda r: r.samples >= total, timeout=10) for st in stations
        ]
        assert any(s.get("listeners") == 2 for s in statuses), statuses

        # The operator ends the session: every station reports it finished.
        ended = await system.api_json("POST", f"/api/v1/live/{session['id']}/end")
        assert ended["status"] == "ended"
        reader.cancel()

    for rec in recs:
        first = rec.pcm[: int(TONE_S * RATE) * 2]
        second = rec.pcm[int(TONE_S * RATE) * 2 : total * 2]
        # Away from the switch, each half is one clean tone, in the order it was spoken.
        assert abs(dominant_hz(first[6400:-6400]) - 1000) < 30
        assert abs(dominant_hz(second[6400:-6400]) - 2000) < 60
    latencies = sorted(rec.sounded_at(i * FRAME) - sent_at[i] for rec in recs for i in range(len(frames)))
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"\nlive voice latency (frame sent -> sounds on station), {len(latencies)} frames on 2 stations: "
          f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
    assert min(latencies) > 0
    assert p95 < 1.5

    rows = await eventually(
        lambda: system.api_json("GET", f"/api/v1/play-log?broadcast_id={session['broadcast_id']}"),
        lambda rows: len(rows) == 2 and all(r["status"] == "played" for r in rows),
        timeout=10, what="both stations report the live session played",
    )
    assert {r["device_id"] for r in rows} == {st.device_id for st in stations}
    for st in stations:
        assert st.sink.streams[-1].completed


async def test_panel_microphone_reaches_a_station(live_system: System, tmp_path: Path) -> None:
    """The real page in Chromium: its fake microphone plays a 1 kHz tone file; the station hears it."""
    problem = chromium_problem()
    if problem:
        skip_or_fail(problem)
    from playwright.async_api import async_playwright, expect

    system = live_system
    (station,) = await system.add_stations(1)
    mic = tone(tmp_path / "mic.wav", freq=1000, seconds=10)
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            context = await browser.new_context(base_url=system.base_url, locale="vi-VN")
            page = await context.new_page()
            await page.goto("/login")
            await page.fill('input[name="username"]', "admin")
            await page.fill('input[name="password"]', system.admin_password)
            await page.click('button[type="submit"]')
            await page.wait_for_url(re.compile(r".*/$"))
            await page.goto("/live")
            assert await page.locator("h1").inner_text() == "Phát trực tiếp"
            await page.click("#live-mic")
            await expect(page.locator("#live-listeners")).to_have_text("1", timeout=15000)
            await expect(page.locator("#live-status")).to_contain_text("Đang phát trực tiếp")
            rec = await station.sink.wait_stream(lambda r: loud_for(r, 1.0), timeout=15)
            await shot(page, "live-voice")
            await page.click("#live-stop")
            await expect(page.locator("#live-status")).to_contain_text("Đã kết thúc", timeout=10000)
        finally:
            await browser.close()
    tail = bytes(rec.pcm[-16000:])
    print(f"\nbrowser microphone tone heard at {dominant_hz(tail):.0f} Hz on the station")
    assert abs(dominant_hz(tail) - 1000) < 50
    rows = await eventually(
        lambda: system.api_json("GET", "/api/v1/play-log"),
        lambda rows: [r["status"] for r in rows] == ["played"], timeout=10, what="the session played",
    )
    assert rows[0]["device_id"] == station.device_id


def loud_for(rec: StreamRecording, seconds: float) -> bool:
    """The last `seconds` received are clearly audible (not the silence of an idle microphone)."""
    n = int(seconds * RATE)
    if rec.samples < n:
        return False
    tail = array.array("h")
    tail.frombytes(bytes(rec.pcm[-2 * n :]))
    return math.sqrt(sum(s * s for s in tail) / n) > 300
