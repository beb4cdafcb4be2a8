"""Text-to-speech engines: a Vietnamese paragraph with full diacritics becomes speech of
plausible length in each regional voice, speed changes the length, the engine runs
with a time limit and the text never reaches a shell. Real espeak-ng; Piper only when a
model is installed (never downloaded)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from controller.core.errors import UserError
from controller.services.tts import VOICES, TtsService, TtsTimeout
from controller.services.tts.base import run_engine
from controller.services.tts.espeak import EspeakEngine
from controller.services.tts.piper import PiperEngine

PARAGRAPH = (
    "Thực hiện chỉ đạo của Ủy ban nhân dân huyện, xã Hợp Hòa tổ chức tiêm chủng mở rộng cho trẻ "
    "em dưới năm tuổi. Đề nghị các bậc phụ huynh đưa con em đến Trạm Y tế xã đúng giờ, mang theo "
    "sổ tiêm chủng và thẻ bảo hiểm y tế. Trân trọng thông báo!"
)


def syllables(text: str) -> int:
    return len([w for w in text.replace(",", " ").replace(".", " ").split() if any(c.isalpha() for c in w)])


def duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          str(path)], capture_output=True, check=True, text=True).stdout  # fmt: skip
    return float(out.strip())


@pytest.fixture(scope="module")
def service() -> TtsService:
    return TtsService([EspeakEngine()], max_chars=2000, timeout_s=60)


@pytest.mark.parametrize("voice", VOICES)
def test_each_regional_voice_speaks_a_paragraph_at_a_plausible_pace(
    service: TtsService, voice: str, tmp_path: Path
) -> None:
    speech = service.synthesize(PARAGRAPH, voice, 1.0, tmp_path)
    seconds = duration(speech.wav)
    pace = syllables(speech.spoken_text) / seconds
    # Announcers read 3-5 syllables a second; allow a wide band around it.
    assert 2.0 <= pace <= 7.0, f"{voice}: {syllables(speech.spoken_text)} syllables in {seconds:.1f}s"
    assert speech.engine == "espeak-ng"
    # It is speech, not silence: ebur128 finds speech-level loudness.
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(speech.wav), "-af", "ebur128",
           "-f", "null", "-"]  # fmt: skip
    err = subprocess.run(cmd, capture_output=True, check=True).stderr.decode()
    integrated = float(err[err.rfind("Summary:") :].split("I:")[1].split("LUFS")[0])
    assert integrated > -35


def test_regional_voices_differ_and_speed_changes_length(service: TtsService, tmp_path: Path) -> None:
    wavs = set()
    for voice in VOICES:
        (tmp_path / voice).mkdir()
        wavs.add(service.synthesize("Xin chào bà con.", voice, 1.0, tmp_path / voice).wav.read_bytes())
    assert len(wavs) == 3
    (tmp_path / "slow").mkdir()
    (tmp_path / "fast").mkdir()
    slow = duration(service.synthesize(PARAGRAPH, "vi-north", 0.75, tmp_path / "slow").wav)
    fast = duration(service.synthesize(PARAGRAPH, "vi-north", 1.5, tmp_path / "fast").wav)
    assert fast < slow * 0.7, (slow, fast)


def test_requests_are_checked_before_any_engine_runs(service: TtsService) -> None:
    cases = [
        (("Xin chào", "vi-hanoi", 1.0), "tts.bad_voice"),
        (("   ", "vi-north", 1.0), "tts.text_empty"),
        (("a" * 2001, "vi-north", 1.0), "tts.text_too_long"),
        (("... !!! ---", "vi-north", 1.0), "tts.nothing_to_say"),
        (("Xin chào", "vi-north", 5.0), "tts.bad_rate"),
    ]
    for args, key in cases:
        with pytest.raises(UserError) as exc:
            service.validate(*args)
        assert exc.value.key == key and exc.value.status == 422


def test_engine_text_is_data_and_runs_under_a_deadline(tmp_path: Path) -> None:
    # Shell metacharacters are just text to the engine (it is never given a shell).
    marker = tmp_path / "pwned"
    speech = TtsService([EspeakEngine()]).synthesize(f"Xin chào; touch {marker} $(touch {marker})",
                                                      "vi-north", 1.0, tmp_path)  # fmt: skip
    assert speech.wav.exists() and not marker.exists()
    # A hung engine is stopped at the deadline.
    started = time.monotonic()
    with pytest.raises(TtsTimeout):
        run_engine(["sleep", "30"], "x", tmp_path / "never.wav", timeout=0.5)
    assert time.monotonic() - started < 5
    hung = TtsService([EspeakEngine(executable="espeak-ng")], timeout_s=0.001)
    with pytest.raises(UserError) as exc:
        hung.synthesize(PARAGRAPH * 5, "vi-north", 1.0, tmp_path)
    assert exc.value.status == 504 and exc.value.key == "tts.timeout"


PIPER_MODEL = os.environ.get("COMMUNECAST_TEST_PIPER_MODEL")


@pytest.mark.skipif(
    not (PIPER_MODEL and Path(PIPER_MODEL).is_file() and shutil.which("piper")),
    reason="no Piper model installed (set COMMUNECAST_TEST_PIPER_MODEL=/path/to/vi_VN-*.onnx and install "
    "piper); models are never downloaded by the suite",
)
def test_piper_model_by_path_replaces_espeak_for_its_voice(tmp_path: Path) -> None:
    assert PIPER_MODEL is not None
    service = TtsService([PiperEngine({"vi-north": Path(PIPER_MODEL)}), EspeakEngine()])
    speech = service.synthesize(PARAGRAPH, "vi-north", 1.0, tmp_path)
    assert speech.engine == "piper"
    assert 2.0 <= syllables(speech.spoken_text) / duration(speech.wav) <= 7.0
    (tmp_path / "s").mkdir()
    assert service.synthesize(PARAGRAPH, "vi-south", 1.0, tmp_path / "s").engine == "espeak-ng"
