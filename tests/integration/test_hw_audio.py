"""Audio seam: decoding, fingerprints, the simulated speaker's timing, and AlsaAudioOutput."""

from __future__ import annotations

import array
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device_agents.common.clock import sleep_until
from device_agents.hardware.audio import (
    AlsaAudioOutput,
    AudioOutput,
    AudioOutputError,
    scale_pcm,
)
from device_agents.hardware.decode import AudioDecodeError, decode_pcm
from firmware_sim.audio_sink import SimAudioSink
from firmware_sim.fingerprint import fingerprint_file, fingerprint_pcm

# Measures start instants: run alone (scripts/test.sh), not next to other tests.
pytestmark = [pytest.mark.timeout(60), pytest.mark.solo]


def make_tone(path: Path, frequency: int, seconds: float = 1.5) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={frequency}:duration={seconds}",
            "-ar",
            "44100",
            str(path),
        ],
        check=True,
    )
    return path


@pytest.fixture
def tone440(tmp_path: Path) -> Path:
    return make_tone(tmp_path / "tone440.wav", 440)


@pytest.fixture
def tone880(tmp_path: Path) -> Path:
    return make_tone(tmp_path / "tone880.wav", 880)


def samples(pcm: bytes) -> list[int]:
    values = array.array("h")
    values.frombytes(pcm)
    if sys.byteorder == "big":
        values.byteswap()
    return list(values)


def pcm_of(values: list[int]) -> bytes:
    out = array.array("h", values)
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


# -- clock and decoder ------------------------------------------------------------------


async def test_sleep_until_is_precise() -> None:
    target = time.time() + 0.2
    await sleep_until(target)
    assert 0 <= time.time() - target < 0.010
    t0 = time.monotonic()
    await sleep_until(time.time() - 5)  # past: no wait
    assert time.monotonic() - t0 < 0.005


async def test_decode_concatenates_and_resamples(tone440: Path, tone880: Path) -> None:
    one = await decode_pcm([tone440])
    assert len(one) == pytest.approx(1.5 * 16000 * 2, abs=64)
    both = await decode_pcm([tone440, tone880])
    assert len(both) == len(one) + len(await decode_pcm([tone880]))
    assert both.startswith(one)
    assert len(await decode_pcm([tone440], rate=8000)) == pytest.approx(len(one) / 2, abs=64)


async def test_decode_error_carries_ffmpeg_message(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio")
    with pytest.raises(AudioDecodeError, match=r"junk\.mp3"):
        await decode_pcm([junk])
    with pytest.raises(AudioDecodeError):
        await decode_pcm([tmp_path / "missing.wav"])


# -- fingerprint --------------------------------------------------------------------------


async def test_fingerprint_same_signal_same_string(tone440: Path, tone880: Path) -> None:
    fp440 = await fingerprint_file(tone440)
    assert fp440 == await fingerprint_file(tone440)
    assert fp440.startswith("d15:")
    assert fp440 != await fingerprint_file(tone880)
    # Quieter is a different signal too.
    pcm = await decode_pcm([tone440])
    assert fingerprint_pcm(scale_pcm(pcm, 30), 16000) != fp440
    assert fingerprint_pcm(pcm, 16000) == fp440


def test_fingerprint_of_silence() -> None:
    assert fingerprint_pcm(bytes(16000 * 2), 16000) == "d10:" + "0" * 10 + ":" + "0" * 10


# -- the simulated speaker ------------------------------------------------------------------


async def test_sink_plays_on_time_for_the_real_duration(tmp_path: Path, tone440: Path) -> None:
    sink = SimAudioSink(state_dir=tmp_path / "state")
    assert isinstance(sink, AudioOutput)
    prepared = await sink.prepare([tone440])
    assert prepared.duration_s == pytest.approx(1.5, abs=0.01)

    start_at = time.time() + 0.5
    result = await sink.play(prepared, start_at=start_at, volume=70)

    assert result.completed
    assert abs(result.started_at - start_at) < 0.020
    assert result.finished_at - result.started_at == pytest.approx(1.5, abs=0.05)
    playback = await sink.wait_for(lambda p: p.requested_start == start_at, timeout=1)
    assert playback.fingerprint == await fingerprint_file(tone440)
    assert playback.volume == 70 and playback.completed
    assert playback.files == (str(tone440),)
    assert not sink.playing

    lines = (tmp_path / "state" / "playbacks.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["fingerprint"] == playback.fingerprint
    assert record["started_at"] == playback.started_at
    assert record["completed"] is True


async def test_sink_fingerprint_tells_files_apart(tone440: Path, tone880: Path) -> None:
    sink = SimAudioSink()
    prepared = await sink.prepare([tone880])
    await sink.play(prepared, start_at=time.time(), volume=50)
    played = await sink.wait_for(lambda p: True, timeout=1)
    assert played.fingerprint == await fingerprint_file(tone880)
    assert played.fingerprint != await fingerprint_file(tone440)


async def test_stop_cuts_playback_short_promptly(tone440: Path) -> None:
    sink = SimAudioSink()
    prepared = await sink.prepare([tone440])
    play = asyncio.create_task(sink.play(prepared, start_at=time.time() + 0.1, volume=100))
    await sink.wait_playing(timeout=2)
    assert sink.playing and sink.volume == 100
    stopped_at = time.time()
    await sink.stop()
    result = await asyncio.wait_for(play, timeout=1)
    assert result.completed is False
    assert result.finished_at - stopped_at < 0.050
    assert not sink.playing
    playback = await sink.wait_for(lambda p: not p.completed, timeout=1)
    assert playback.played_s < 1.0


async def test_stop_then_play_at_once_preempts(tone440: Path, tone880: Path) -> None:
    sink = SimAudioSink()
    routine = await sink.prepare([tone440])
    alert = await sink.prepare([tone880])
    first = asyncio.create_task(sink.play(routine, start_at=time.time(), volume=40))
    await sink.wait_playing(timeout=2)
    await sink.stop()
    assert first.done() and not first.result().completed
    second = await sink.play(alert, start_at=time.time(), volume=90)
    assert second.completed
    assert [p.volume for p in sink.playbacks] == [40, 90]


async def test_stop_before_the_start_instant_cancels(tone440: Path) -> None:
    sink = SimAudioSink()
    prepared = await sink.prepare([tone440])
    play = asyncio.create_task(sink.play(prepared, start_at=time.time() + 30, volume=60))
    await asyncio.sleep(0)  # let play() register its pending playback
    await sink.stop()
    result = await asyncio.wait_for(play, timeout=2)
    assert result.completed is False
    assert result.finished_at == result.started_at


async def test_wait_for_times_out_with_a_helpful_message() -> None:
    sink = SimAudioSink()
    with pytest.raises(TimeoutError, match="no matching playback"):
        await sink.wait_for(lambda p: True, timeout=0.05)


# -- AlsaAudioOutput ----------------------------------------------------------------------


def test_scale_pcm() -> None:
    pcm = pcm_of([0, 1000, -1000, 32767, -32768])
    assert scale_pcm(pcm, 100) == pcm
    assert samples(scale_pcm(pcm, 0)) == [0, 0, 0, 0, 0]
    assert samples(scale_pcm(pcm, 50)) == [0, 250, -250, 8192, -8192]
    assert scale_pcm(pcm, 150) == pcm  # clamped to 100
    assert samples(scale_pcm(pcm, -5)) == [0] * 5
    with pytest.raises(ValueError):
        scale_pcm(b"\x00\x01\x02", 50)


@pytest.mark.skipif(shutil.which("aplay") is not None, reason="aplay is installed here")
def test_alsa_output_without_aplay_says_why() -> None:
    with pytest.raises(AudioOutputError, match="alsa-utils"):
        AlsaAudioOutput()


@pytest.mark.skipif(shutil.which("aplay") is None, reason="aplay (alsa-utils) not installed")
async def test_alsa_output_plays_to_null_device(tone440: Path) -> None:
    out = AlsaAudioOutput(device="null")
    assert isinstance(out, AudioOutput)
    prepared = await out.prepare([tone440])
    start_at = time.time() + 0.5
    result = await out.play(prepared, start_at=start_at, volume=60)
    assert result.completed
    assert abs(result.started_at - start_at) < 0.050

    play = asyncio.create_task(out.play(prepared, start_at=time.time() + 0.3, volume=60))
    deadline = time.monotonic() + 3
    while not out.playing and not play.done():  # "null" may drain faster than real time
        assert time.monotonic() < deadline, "aplay never started"
        await asyncio.sleep(0.005)
    await out.stop()
    stopped = await asyncio.wait_for(play, timeout=2)
    assert not out.playing
    assert stopped.finished_at >= stopped.started_at


FAKE_APLAY = """\
#!{python}
# Stand-in for aplay: consumes raw S16_LE mono at the real rate, records its args.
import sys, time
args = sys.argv[1:]
rate = int(args[args.index("-r") + 1])
open({log!r}, "a").write(" ".join(args) + "\\n")
if args[args.index("-D") + 1] == "broken":
    sys.stderr.write("aplay: main: audio open error: No such device\\n")
    sys.exit(1)
t0 = None; total = 0
while chunk := sys.stdin.buffer.read(640):
    t0 = t0 or time.monotonic()  # the clock starts with the first sample, as a sound card's does
    total += len(chunk)
    ahead = total / (2 * rate) - (time.monotonic() - t0)
    if ahead > 0.05:
        time.sleep(ahead - 0.05)
time.sleep(max(0.0, total / (2 * rate) - (time.monotonic() - (t0 or time.monotonic()))))
"""


@pytest.fixture
def fake_aplay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "aplay.log"
    script = bin_dir / "aplay"
    script.write_text(FAKE_APLAY.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(shutil.which('ffmpeg') or '/usr/bin').parent}")
    return log


async def test_alsa_output_drives_aplay(fake_aplay: Path, tone440: Path) -> None:
    out = AlsaAudioOutput(device="hw:1,0")
    prepared = await out.prepare([tone440])
    start_at = time.time() + 0.5
    result = await out.play(prepared, start_at=start_at, volume=80)
    assert result.completed
    assert abs(result.started_at - start_at) < 0.020
    assert result.finished_at - result.started_at == pytest.approx(1.5, abs=0.2)
    args = (await asyncio.to_thread(fake_aplay.read_text)).split()
    assert args == ["-q", "-t", "raw", "-f", "S16_LE", "-r", "16000", "-c", "1", "-D", "hw:1,0"]

    play = asyncio.create_task(out.play(prepared, start_at=time.time() + 0.3, volume=80))
    deadline = time.monotonic() + 3
    while not out.playing:
        assert time.monotonic() < deadline, "never started"
        await asyncio.sleep(0.005)
    stopped_at = time.time()
    await out.stop()
    stopped = await asyncio.wait_for(play, timeout=2)
    assert stopped.completed is False
    assert stopped.finished_at - stopped_at < 0.050
    assert not out.playing


async def test_alsa_output_reports_aplay_failure(fake_aplay: Path, tone440: Path) -> None:
    out = AlsaAudioOutput(device="broken")
    prepared = await out.prepare([tone440])
    with pytest.raises(AudioOutputError, match="No such device"):
        await out.play(prepared, start_at=time.time() + 0.3, volume=50)
    assert not out.playing
