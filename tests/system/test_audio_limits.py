"""Issue 16 item 3: an upload cannot make the controller decode for hours, and ordinary uploads
never delay an emergency. Real ffmpeg and espeak-ng throughout; the HTTP checks run against the
real controller process.

- audio longer than the limit is refused right after the probe (413, its length and the limit
  in minutes), and nothing is stored;
- a container that claims a short length is stopped by ``ffmpeg -t`` (413 too_long_decoded);
- a job past its deadline is killed (422 media.timeout), no ffmpeg left behind;
- with both ordinary slots held by long uploads, a third ordinary one is told 429 at once and
  emergency speech still goes through its own lane promptly;
- only accounts that may broadcast emergencies can use the emergency upload lane.
"""

from __future__ import annotations

import os
import struct
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from benchmarks.cap_lane import ffmpeg_under
from communecast.stations import ApiClient
from controller.core.errors import UserError
from controller.core.i18n import t
from controller.db.models import User
from controller.db.session import Database
from controller.services.audio_lanes import AudioLanes
from controller.services.media import MediaStore
from controller.services.tts import TtsService
from controller.web.accounts import create_user
from testkit.harness import System
from tests.support.audio import tone


def long_opus(path: Path, seconds: float) -> Path:
    """A long, small file (like the 2.5 MB Opus that decodes to an hour): cheap to make."""
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}", "-ac", "1",
                    "-c:a", "libopus", "-b:a", "6k", str(path)], check=True)  # fmt: skip
    return path


def lying_m4a(path: Path, *, real_s: float, claimed_s: float) -> Path:
    """An AAC file whose movie, track and media headers claim `claimed_s`; its samples last `real_s`.

    ffprobe believes the headers; the decoder plays every sample."""
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"sine=frequency=440:duration={real_s}", "-ac", "1", "-c:a", "aac",
                    "-b:a", "32k", str(path)], check=True)  # fmt: skip
    data = bytearray(path.read_bytes())
    movie_scale = 0
    for box, duration_at, scale_at in ((b"mvhd", 20, 16), (b"tkhd", 24, None), (b"mdhd", 20, 16)):
        at = data.find(box)
        assert at > 0 and data[at + 4] == 0, box  # version 0 headers: 32-bit fields
        scale = struct.unpack(">I", data[at + scale_at : at + scale_at + 4])[0] if scale_at else movie_scale
        movie_scale = movie_scale or scale
        data[at + duration_at : at + duration_at + 4] = struct.pack(">I", int(claimed_s * scale))
    path.write_bytes(data)
    return path


def stored_files(store: MediaStore) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(store.root).parts]


def ffmpeg_children() -> list[int]:
    """ffmpeg processes this test process started that are still alive."""
    return ffmpeg_under(os.getpid())


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_opus(tmp_path_factory.mktemp("long") / "ten-minutes.opus", 600)


def test_too_long_upload_is_refused_after_the_probe_and_nothing_is_stored(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media", max_bytes=50 * 2**20, lanes=AudioLanes(max_duration_s=60))
    started = time.monotonic()
    with tone(tmp_path / "ban-tin.wav", seconds=90).open("rb") as fh, pytest.raises(UserError) as err:
        store.ingest(fh, "ban-tin.wav")
    assert time.monotonic() - started < 5  # refused from the probe, not after decoding it all
    assert err.value.status == 413 and err.value.key == "media.too_long"
    assert err.value.params == {"length": "1.5", "limit": "1"}
    assert t(err.value.key, "vi", **err.value.params).startswith("Âm thanh quá dài: 1.5 phút, tối đa 1 phút")
    assert "at most 1 minutes" in t(err.value.key, "en", **err.value.params)
    assert stored_files(store) == []


def test_a_container_that_lies_about_its_length_is_stopped_by_the_decode_cap(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media", max_bytes=50 * 2**20, lanes=AudioLanes(max_duration_s=10))
    liar = lying_m4a(tmp_path / "liar.m4a", real_s=40, claimed_s=3)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                            str(liar)], capture_output=True, text=True, check=True)  # fmt: skip
    assert float(probe.stdout) == pytest.approx(3.0)  # the probe believes the header
    with liar.open("rb") as fh, pytest.raises(UserError) as err:
        store.ingest(fh, "liar.m4a")
    assert err.value.status == 413 and err.value.key == "media.too_long_decoded"
    assert "10 phút" not in t(err.value.key, "vi", **err.value.params)  # 10 s = 0.2 min, said as such
    assert "0.2" in t(err.value.key, "en", **err.value.params)
    assert stored_files(store) == []
    # A truthful file under the limit is unaffected.
    with tone(tmp_path / "ok.wav", seconds=3).open("rb") as fh:
        assert store.ingest(fh, "ok.wav").duration_s == pytest.approx(3.0, abs=0.1)


def test_a_job_past_its_deadline_is_killed_and_stores_nothing(tmp_path: Path, ten_minutes: Path) -> None:
    store = MediaStore(tmp_path / "media", max_bytes=50 * 2**20, lanes=AudioLanes(job_timeout_s=1.0))
    started = time.monotonic()
    with ten_minutes.open("rb") as fh, pytest.raises(UserError) as err:
        store.ingest(fh, "ten-minutes.opus")
    assert time.monotonic() - started < 6  # the deadline, plus the probe and the kill
    assert err.value.status == 422 and err.value.key == "media.timeout"
    assert "quá 1 giây" in t(err.value.key, "vi", **err.value.params)
    assert ffmpeg_children() == []
    assert stored_files(store) == [] and list((store.root / "tmp").iterdir()) == []


def test_emergency_speech_goes_through_while_two_long_uploads_hold_the_ordinary_lane(
    tmp_path: Path, ten_minutes: Path
) -> None:
    # The two long uploads hold both ordinary slots while the emergency is checked (a job deadline of
    # 30 s ends them on a slow machine). With one shared pool (the old code) the emergency
    # job waited for one of them to end.
    lanes = AudioLanes(slots=2, emergency_slots=2, job_timeout_s=30, ordinary_wait_s=0.2)
    store = MediaStore(tmp_path / "media", max_bytes=50 * 2**20, lanes=lanes)
    outcomes: list[str] = []

    def long_upload(i: int) -> None:
        try:
            with ten_minutes.open("rb") as fh:
                store.ingest(fh, f"long-{i}.opus")
            outcomes.append("stored")
        except UserError as exc:
            outcomes.append(exc.key)

    uploads = [threading.Thread(target=long_upload, args=(i,)) for i in range(2)]
    for th in uploads:
        th.start()
    try:
        deadline = time.monotonic() + 15
        while len(ffmpeg_children()) < 2:  # both long uploads are being decoded (after their probe)
            assert time.monotonic() < deadline, "the two long uploads never started ffmpeg"
            time.sleep(0.01)

        # Emergency speech (what a CAP alert or an emergency without recording airs) does not wait.
        tts = TtsService.from_settings(object())
        started = time.monotonic()
        text = "Cảnh báo lũ quét, người dân di chuyển lên vùng cao."
        speech = tts.synthesize(text, "vi-north", 1.0, tmp_path)
        stored = store.ingest_path(speech.wav, "khẩn cấp", emergency=True)
        took = time.monotonic() - started
        assert stored.path.exists() and stored.duration_s > 1
        # Promptly: on an idle machine about a second; the bound leaves room for a loaded CI box
        # and stays well under the 30 s the long uploads hold their slots.
        assert took < 15, f"emergency speech took {took:.1f} s next to two long uploads"
        assert all(th.is_alive() for th in uploads), "emergency speech waited for the long uploads to end"

        # A third ordinary upload is told the server is busy, at once, and nothing more is stored.
        started = time.monotonic()
        with tone(tmp_path / "third.wav", seconds=2).open("rb") as fh, pytest.raises(UserError) as err:
            store.ingest(fh, "third.wav")
        assert err.value.status == 429 and err.value.key == "media.busy"
        assert "2 tệp" in t(err.value.key, "vi", **err.value.params)
        assert time.monotonic() - started < 3
        assert stored_files(store) == [stored.path]
    finally:
        for th in uploads:
            th.join(timeout=60)
    assert not any(th.is_alive() for th in uploads)
    # Each ended by its 30 s deadline, or stored if this machine decoded ten minutes faster than that
    # (the deadline itself is test_a_job_past_its_deadline_is_killed_and_stores_nothing).
    assert len(outcomes) == 2 and set(outcomes) <= {"media.timeout", "stored"}, outcomes
    assert ffmpeg_children() == []


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[System]:
    system = System(
        tmp_path / "sys",
        f"sqlite:///{tmp_path / 'c.db'}",
        controller_env={
            "COMMUNECAST_MEDIA_MAX_DURATION_S": "60",
            "COMMUNECAST_MEDIA_EMERGENCY_MAX_DURATION_S": "6",
        },
    )
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


async def test_http_limits_and_who_may_use_the_emergency_lane(controller: System, tmp_path: Path) -> None:
    system = controller
    long = tone(tmp_path / "dai.wav", seconds=90).read_bytes()
    r = await system.api("POST", "/api/v1/media", files={"file": ("dai.wav", long)})
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "media.too_long"
    assert r.json()["detail"].startswith("Âm thanh quá dài: 1.5 phút, tối đa 1 phút")

    # The emergency lane has a shorter limit, and only accounts that may send emergencies use it.
    eight = tone(tmp_path / "tam-giay.wav", seconds=8).read_bytes()
    r = await system.api("POST", "/api/v1/media?emergency=true", files={"file": ("8s.wav", eight)},
                         headers={"Accept-Language": "en"})  # fmt: skip
    assert r.status_code == 413 and r.json()["code"] == "media.too_long", r.text
    assert "at most 0.1 minutes" in r.json()["detail"]
    db = Database(system.database_url)
    with db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        create_user(s, admin, "ky.thuat", "mat-khau-dai-du", "technician", system.communes[0]["id"])
    db.dispose()
    tech = await ApiClient.login(system.base_url, "ky.thuat", "mat-khau-dai-du")
    short = tone(tmp_path / "ngan.wav", seconds=3).read_bytes()
    r = await system.api("POST", "/api/v1/media?emergency=true", auth=False,
                         files={"file": ("3s.wav", short)},
                         headers={"Authorization": f"Bearer {tech.token}"})  # fmt: skip
    assert r.status_code == 403 and r.json()["code"] == "media.emergency_forbidden", r.text
    assert "khẩn cấp" in r.json()["detail"]
    assert await system.api_json("GET", "/api/v1/media") == []  # nothing of the above was stored

    r = await system.api("POST", "/api/v1/media?emergency=true", files={"file": ("3s.wav", short)})
    assert r.status_code == 201, r.text
    assert [m["sha256"] for m in await system.api_json("GET", "/api/v1/media")] == [r.json()["sha256"]]
