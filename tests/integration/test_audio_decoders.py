"""The agent's decoder seam (device_agents/hardware/decode.py): Ogg/Opus through opusdec when it is
installed, everything else (and Ogg/Opus without opusdec) through ffmpeg, the same PCM format
either way; a broken file is an AudioDecodeError naming the file and the decoder on both paths."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from device_agents.hardware import decode
from device_agents.hardware.decode import AudioDecodeError, decode_pcm, is_mono_ogg_opus
from firmware_sim.fingerprint import fingerprint_pcm

needs_opusdec = pytest.mark.skipif(shutil.which("opusdec") is None,
                                   reason="opusdec (opus-tools) not installed: scripts/setup.sh installs it")
FRAME = 2  # bytes of one S16LE mono sample


def _encode(path: Path, *args: str, seconds: float = 2.5) -> Path:
    tone = f"sine=frequency=440:duration={seconds}"
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", tone,
                    *args, str(path)], check=True)  # fmt: skip
    return path


@pytest.fixture
def opus(tmp_path: Path) -> Path:
    """Mono 48 kHz Ogg/Opus, as the controller stores it (controller/services/audio_pipeline.py)."""
    return _encode(tmp_path / "stored.opus", "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", "32k",
                   "-application", "voip", "-f", "ogg")  # fmt: skip


@pytest.fixture
def ffmpeg_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A station without opus-tools."""
    monkeypatch.setattr(decode, "opusdec_path", lambda: None)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The decoder each file went to."""
    used: list[str] = []
    real_opusdec, real_ffmpeg = decode._opusdec, decode._ffmpeg

    async def opusdec(tool: str, path: Path, rate: int) -> bytes:
        used.append("opusdec")
        return await real_opusdec(tool, path, rate)

    async def ffmpeg(path: Path, rate: int) -> bytes:
        used.append("ffmpeg")
        return await real_ffmpeg(path, rate)

    monkeypatch.setattr(decode, "_opusdec", opusdec)
    monkeypatch.setattr(decode, "_ffmpeg", ffmpeg)
    return used


@needs_opusdec
async def test_opusdec_and_ffmpeg_give_the_same_pcm(opus: Path, spy: list[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    small = await decode_pcm([opus], 16000)
    assert spy == ["opusdec"]
    monkeypatch.setattr(decode, "opusdec_path", lambda: None)
    fallback = await decode_pcm([opus], 16000)
    assert spy == ["opusdec", "ffmpeg"]
    # Same format and length (2.5 s at 16 kHz, mono S16LE) within one sample, the same sound.
    assert abs(len(small) - len(fallback)) <= FRAME
    assert len(small) == pytest.approx(2.5 * 16000 * FRAME, abs=FRAME)
    assert fingerprint_pcm(small, 16000) == fingerprint_pcm(fallback, 16000)
    monkeypatch.undo()
    assert small == await decode_pcm([opus], 16000), "no dither: the same bytes every time"


@needs_opusdec
async def test_only_mono_ogg_opus_at_an_opus_rate_goes_to_opusdec(tmp_path: Path, opus: Path,
                                                                  spy: list[str]) -> None:
    stereo = _encode(tmp_path / "stereo.opus", "-ac", "2", "-c:a", "libopus", "-f", "ogg")
    mp3 = _encode(tmp_path / "clip.mp3", "-ac", "1")
    vorbis = _encode(tmp_path / "clip.ogg", "-ac", "1", "-c:a", "libvorbis", "-f", "ogg")
    named_opus = tmp_path / "really-an-mp3.opus"  # the name does not decide
    named_opus.write_bytes(mp3.read_bytes())
    assert is_mono_ogg_opus(opus)
    assert not any(is_mono_ogg_opus(p) for p in (stereo, mp3, vorbis, named_opus, tmp_path / "missing"))
    pcm = await decode_pcm([opus, stereo, mp3, vorbis, named_opus], 16000)
    assert spy == ["opusdec", "ffmpeg", "ffmpeg", "ffmpeg", "ffmpeg"]
    assert len(pcm) == pytest.approx(5 * 2.5 * 16000 * FRAME, abs=5 * 1200 * FRAME)  # mp3 padding
    spy.clear()
    await decode_pcm([opus], 22050)  # not a rate libopus decodes at: ffmpeg resamples
    assert spy == ["ffmpeg"]


def _corrupt(opus: Path) -> Path:
    """The real first page (a mono OpusHead, so it goes to opusdec) and then garbage."""
    data = opus.read_bytes()
    second_page = data.index(b"OggS", 4)
    bad = opus.with_name("corrupt.opus")
    bad.write_bytes(data[:second_page] + os.urandom(4000))
    return bad


@needs_opusdec
async def test_a_corrupt_file_is_a_clear_error_with_opusdec(opus: Path, spy: list[str]) -> None:
    bad = _corrupt(opus)
    with pytest.raises(AudioDecodeError, match=r"cannot decode .*corrupt\.opus \(opusdec\): \S"):
        await decode_pcm([opus, bad], 16000)
    assert "opusdec" in spy


async def test_a_corrupt_file_is_a_clear_error_with_ffmpeg(opus: Path, spy: list[str],
                                                           ffmpeg_only: None) -> None:
    bad = _corrupt(opus)
    with pytest.raises(AudioDecodeError, match=r"cannot decode .*corrupt\.opus \(ffmpeg\): \S"):
        await decode_pcm([bad], 16000)
    assert spy == ["ffmpeg"]


async def test_without_opusdec_ogg_opus_still_plays(opus: Path, spy: list[str], ffmpeg_only: None) -> None:
    assert len(await decode_pcm([opus], 16000)) == pytest.approx(2.5 * 16000 * FRAME, abs=FRAME)
    assert spy == ["ffmpeg"]


def test_the_start_log_says_which_decoder_and_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(decode, "opusdec_path", lambda: "/usr/bin/opusdec")
    assert decode.decoder_note().startswith("audio decoder: opusdec for Ogg/Opus")
    monkeypatch.setattr(decode, "opusdec_path", lambda: None)
    assert "apt-get install opus-tools" in decode.decoder_note()
    decode.log_decoder_note.cache_clear()
    with caplog.at_level(logging.INFO, logger=decode.__name__):
        decode.log_decoder_note()
        decode.log_decoder_note()  # once per process
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "opus-tools" in caplog.records[0].getMessage()
    decode.log_decoder_note.cache_clear()
