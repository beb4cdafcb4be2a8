"""LED boards end to end: operator API -> signed desired state over Mosquitto -> LED agent ->
byte-level controller simulator -> what the board shows, the preview and the board health."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from communecast.stations import ApiClient, provision_led
from device_agents.led.bitmap import render
from firmware_sim.bench import start_simulated_station
from firmware_sim.led.glyphs import glyph_scores
from testkit.harness import System
from testkit.waiting import eventually

TEXT = "Chuyển đổi số – Thông báo lịch tiêm chủng ngày 05/12"
ASCII = "Chuyen doi so - Thong bao lich tiem chung ngay 05/12"


def _state(cfg: Any) -> dict[str, Any]:
    path = Path(cfg.data_dir) / "sim" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


async def test_vietnamese_text_reaches_bitmap_and_alpha_boards(system: System) -> None:
    api = ApiClient(system.base_url, system.token)
    configs = await provision_led(api, 3, system.root / "boards", protocols=("bitmap", "alpha", "bx5k"))
    boards = [await start_simulated_station(c) for c in configs]
    try:
        ids = {d["uid"]: d["id"] for d in await system.api_json("GET", "/api/v1/devices?kind=led")}
        bitmap_id, alpha_id, bx_id = (ids[c.uid] for c in configs)
        for dev in (bitmap_id, alpha_id, bx_id):  # boards report their controller type once connected
            await eventually(lambda d=dev: system.api_json("GET", f"/api/v1/devices/{d}/led-health"),
                             lambda h: h["protocol"] is not None, timeout=20, what="board birth")

        # Before sending: the operator is told exactly what the text-only board will show.
        dry = await system.api("POST", "/api/v1/led-messages", json={
            "text": TEXT, "targets": {"devices": [bitmap_id, alpha_id]}, "mode": "hold", "dry_run": True})
        assert dry.status_code == 200, dry.text
        shows = {r["device_id"]: r for r in dry.json()["board_will_show"]}
        assert shows[bitmap_id]["text"] == TEXT and not shows[bitmap_id]["lossy"]
        assert shows[alpha_id]["text"] == ASCII and shows[alpha_id]["lossy"]
        assert any("không dấu" in w and ASCII in w for w in dry.json()["warnings"])
        assert await system.api_json("GET", "/api/v1/led-messages") == []  # a dry run stores nothing

        r = await system.api("POST", "/api/v1/led-messages", json={
            "text": TEXT, "targets": {"tags": ["led"]}, "mode": "hold", "priority": "normal"})
        assert r.status_code == 201, r.text
        assert r.json()["id"] and r.json()["boards"] == 3

        # The Alpha controller simulator received frames and shows the transliteration.
        await eventually(lambda: _aw(_state(configs[1])), lambda s: s.get("text") == ASCII, timeout=20,
                         what="alpha board text")
        bx = await eventually(lambda: _aw(_state(configs[2])), lambda s: s.get("text") == ASCII, timeout=20,
                              what="bx5k board text")
        assert bx["frames_rejected"] == 0 and bx["frames_ok"] >= 2
        # The bitmap panel lit up every Vietnamese glyph (none drawn as the font's missing-glyph box).
        png_path = Path(configs[0].data_dir) / "sim" / "current.png"
        await eventually(lambda: _aw(png_path.exists() and Image.open(png_path).size[0] > 192),
                         bool, timeout=20, what="bitmap frame")
        frame = Image.open(png_path).convert("RGB")
        for ch, own, notdef, base in glyph_scores(frame, TEXT, 32):
            assert own >= 0.6, f"{ch!r} is not drawn as itself ({own:.2f})"
            assert own > notdef + 0.3, f"{ch!r} looks like the missing-glyph box"
            if base:
                assert own > base, f"{ch!r} lost its marks (looks like its base letter)"

        # The controller's preview is the same bitmap the board shows.
        health = await eventually(lambda: system.api_json("GET", f"/api/v1/devices/{bitmap_id}/led-health"),
                                  lambda h: h["showing"] == TEXT, timeout=20, what="reported content")
        assert health["controller_reachable"] is True and health["item_ids"] == [f"l{r.json()['id']}"]
        preview = await system.api("GET", f"/api/v1/devices/{bitmap_id}/preview.png")
        assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(preview.content)).convert("RGB").tobytes() == frame.tobytes()
        alpha_preview = await system.api("GET", f"/api/v1/devices/{alpha_id}/preview.png")
        # Drawn at the brightness the board reports (40 % at night, 22:00-05:00).
        dimmed = (await system.api_json("GET", f"/api/v1/devices/{alpha_id}/led-health"))["brightness"] or 100
        expected = render(ASCII, width=192, height=32, brightness=dimmed).convert("RGB")
        assert Image.open(io.BytesIO(alpha_preview.content)).convert("RGB").tobytes() == expected.tobytes()

        # A controller restart re-publishes every desired state: the boards converge on the same content
        # (acked by version) and never go blank meanwhile.
        acks = len(await system.api_json("GET", f"/api/v1/devices/{alpha_id}/events?kind=ack"))
        await system.restart_controller()
        assert _state(configs[1])["text"] == ASCII
        await eventually(lambda: system.api_json("GET", f"/api/v1/devices/{alpha_id}/events?kind=ack"),
                         lambda ev: len(ev) > acks, timeout=20, what="re-published state acked")
        assert _state(configs[1])["text"] == ASCII and _state(configs[1])["frames_rejected"] == 0

        # Cancel: the boards go blank.
        await system.api_json("POST", f"/api/v1/led-messages/{r.json()['id']}/cancel")
        await eventually(lambda: _aw(_state(configs[1])), lambda s: s.get("text") == "", timeout=20,
                         what="alpha board cleared")

        # Bad input: a clear Vietnamese 4xx, nothing stored.
        bad = await system.api("POST", "/api/v1/led-messages", json={
            "text": "x", "targets": {"devices": [bitmap_id]}, "mode": "hold",
            "start_at": "2030-01-02T10:00:00+07:00", "end_at": "2030-01-02T09:00:00+07:00"})
        assert bad.status_code == 422 and "phải sau" in bad.text
        speaker_only = await system.api("POST", "/api/v1/led-messages", json={
            "text": "x", "targets": {"devices": [999999]}, "mode": "hold"}, headers={"Accept-Language": "en"})
        assert speaker_only.status_code == 422 and "No LED board" in speaker_only.text
    finally:
        for b in boards:
            await b.stop()


async def _aw(value: Any) -> Any:
    return value
