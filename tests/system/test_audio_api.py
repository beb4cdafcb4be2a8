"""Issue 3 (audio + TTS) over HTTP against the real controller process, on SQLite and
PostgreSQL: uploads report their loudness after normalization and the warnings an
operator must see, typed Vietnamese becomes a media object of the same shape, the
generated chimes are media, and a chime-bulletin-chime playlist plays in that order."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from testkit.api import Api
from testkit.harness import System
from tests.support.audio import chirp, tone

TARGET = -16.0
MEDIA_KEYS = {"sha256", "duration_s", "size", "content_type", "codec", "original_name", "url", "created_at",
              "loudness_lufs", "true_peak_dbtp", "source_loudness_lufs", "normalization", "origin",
              "warnings"}  # fmt: skip
NOTICE = (
    "THÔNG BÁO: Ủy ban nhân dân xã Hợp Hòa tổ chức tiêm vắc xin sởi cho trẻ từ 9 tháng đến 5 tuổi "
    "lúc 7h30 ngày 06/12/2025 tại Trạm Y tế xã."
)


def ebur128(data: bytes, tmp: Path) -> float:
    path = tmp / "measure.opus"
    path.write_bytes(data)
    err = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128",
                          "-f", "null", "-"], capture_output=True, check=True).stderr.decode()  # fmt: skip
    return float(re.search(r"I:\s+(-?[\d.]+) LUFS", err[err.rfind("Summary:") :]).group(1))  # type: ignore[union-attr]


async def test_upload_tts_and_assets_http_contract(system: System, api: Api, tmp_path: Path) -> None:
    # An upload: normalized, measured afterwards, no warnings for a clean file.
    quiet = chirp(tmp_path / "ban-tin.mp3", seconds=3)
    r = await api.upload_response("ban-tin.mp3", quiet.read_bytes())
    assert r.status_code == 201, r.text
    media = r.json()
    assert set(media) >= MEDIA_KEYS
    assert media["origin"] == "upload" and media["warnings"] == []
    assert abs(media["loudness_lufs"] - TARGET) <= 1.0
    async with httpx.AsyncClient(base_url=system.base_url) as http:
        served = (await http.get(media["url"])).content  # preview / download of the final audio
    assert served[:4] == b"OggS" and len(served) == media["size"]
    assert abs(ebur128(served, tmp_path) - TARGET) <= 1.0  # independent measurement

    # A silent upload is stored but the operator is warned, in Vietnamese by default.
    silent = tone(tmp_path / "im-lang.wav", freq=0, seconds=2)  # a 0 Hz sine is silence
    r = await api.upload_response("im-lang.wav", silent.read_bytes())
    assert r.status_code == 201
    (warning,) = r.json()["warnings"]
    assert warning["code"] == "audio.warn.silent" and "im lặng" in warning["message"]
    path = f"/api/v1/media/{r.json()['sha256']}"
    again = await system.api_json("GET", path, headers={"Accept-Language": "en"})
    assert "silent" in again["warnings"][0]["message"]

    # Text-to-speech: same shape as an upload, plus what was said and by which engine.
    r = await system.api("POST", "/api/v1/media/tts", json={"text": NOTICE, "voice": "vi-south", "rate": 1.0})
    assert r.status_code == 201, r.text
    tts = r.json()
    assert set(tts) >= MEDIA_KEYS and tts["origin"] == "tts" and tts["codec"] == "opus"
    assert abs(tts["loudness_lufs"] - TARGET) <= 1.0 and tts["warnings"] == []
    spoken = tts["tts"]["spoken_text"]
    assert "bảy giờ ba mươi phút" in spoken and "ngày sáu tháng mười hai" in spoken
    assert tts["tts"]["voice"] == "vi-south" and tts["tts"]["engine"] == "espeak-ng"
    words = len(spoken.split())
    assert words / 7 <= tts["duration_s"] <= words / 2  # 2-7 syllables a second
    listed = {m["sha256"] for m in await system.api_json("GET", "/api/v1/media")}
    assert {media["sha256"], tts["sha256"]} <= listed

    # Bad TTS requests: clear 422s in Vietnamese, English on request; nothing is stored.
    r = await system.api("POST", "/api/v1/media/tts", json={"text": "Xin chào", "voice": "vi-hue"})
    assert r.status_code == 422 and "miền Trung" in r.json()["detail"]
    r = await system.api("POST", "/api/v1/media/tts", json={"text": "x" * 6000, "voice": "vi-north"},
                         headers={"Accept-Language": "en"})  # fmt: skip
    assert r.status_code == 422 and "at most 5000 characters" in r.json()["detail"]
    r = await system.api("POST", "/api/v1/media/tts", json={"text": "Xin chào"}, auth=False)
    assert r.status_code == 401
    assert len(await system.api_json("GET", "/api/v1/media")) == 3

    # Generated chimes are media, made on first use, the same on every call.
    assets = await system.api_json("GET", "/api/v1/media/assets")
    by_name = {a["name"]: a for a in assets}
    assert {"chime-intro", "chime-outro", "alert-intro", "test-tone", "test-sweep"} <= set(by_name)
    intro = by_name["chime-intro"]
    assert intro["origin"] == "asset" and intro["title"] == "Nhạc hiệu mở đầu bản tin"
    assert abs(intro["loudness_lufs"] - TARGET) <= 1.0
    again = await system.api_json("GET", "/api/v1/media/assets", headers={"Accept-Language": "en"})
    assert [a["sha256"] for a in again] == [a["sha256"] for a in assets]
    assert again[0]["title"] == "Bulletin intro chime"


async def test_chime_bulletin_chime_playlist_plays_in_order(tmp_path: Path) -> None:
    system = System(tmp_path / "sys", f"sqlite:///{tmp_path / 'c.db'}")
    await system.start()
    try:
        (station,) = await system.add_stations(1)
        request = {"text": "Thông báo lịch tiêm chủng.", "voice": "vi-north"}
        body = await system.api_json("POST", "/api/v1/media/tts", json=request)
        assets = {a["name"]: a for a in await system.api_json("GET", "/api/v1/media/assets")}
        playlist = [assets["chime-intro"], body, assets["chime-outro"]]
        start_at = datetime.now(UTC) + timedelta(seconds=3)
        bc = await system.api_json("POST", "/api/v1/broadcasts", json={
            "title": "Thông báo lịch tiêm chủng", "media": [m["sha256"] for m in playlist],
            "targets": {"all": True}, "start_at": start_at.isoformat(), "priority": "normal",
        })  # fmt: skip
        if not bc.get("approved", True):
            await system.api_json("POST", f"/api/v1/broadcasts/{bc['id']}/approve")
        played = await station.sink.wait_for(lambda p: p.completed, timeout=30)
        assert [Path(f).name.split(".")[0] for f in played.files] == [m["sha256"] for m in playlist]
        assert abs(played.duration_s - sum(m["duration_s"] for m in playlist)) < 0.3
    finally:
        await system.stop()
