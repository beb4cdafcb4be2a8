"""The loudness pipeline: every upload comes out at −16 LUFS (±1 LU) as measured by an
independent ebur128 pass in this test, bit-exact, with the warnings an operator needs
for silent, clipped and far-too-quiet recordings. Real ffmpeg throughout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from audio_assets.generate import ASSETS, generate
from controller.core.errors import UserError
from controller.services.audio_pipeline import LoudnessTarget
from controller.services.media import MediaStore

TARGET = LoudnessTarget()


def ebur128(path: Path) -> tuple[float, float]:
    """Integrated loudness and true peak, straight from ffmpeg's ebur128 filter."""
    err = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true",
         "-f", "null", "-"], capture_output=True, check=True,
    ).stderr.decode()  # fmt: skip
    summary = err[err.rfind("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))  # type: ignore[union-attr]
    return integrated, peak


def lavfi(path: Path, source: str, *extra: str) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, *extra,
                    str(path)], check=True)  # fmt: skip
    return path


def speechlike(path: Path, amplitude: float, seconds: float = 6.0) -> Path:
    """Syllable-rate bursts of a tone: loudness varies over time like speech does."""
    expr = f"{amplitude}*sin(2*PI*(300+400*t/{seconds})*t)*abs(sin(PI*4*t))"
    return lavfi(path, f"aevalsrc='{expr}':s=44100:d={seconds}")


SPEECH = "Ủy ban nhân dân xã thông báo: do ảnh hưởng của cơn bão số ba, đề nghị bà con không ra đồng."


def speech(path: Path, gain_db: float, *extra: str) -> Path:
    """Real synthetic speech (espeak-ng, peaky like a close microphone) at a chosen level."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "vi", "-b", "1", "-w", str(raw), "--stdin"], input=SPEECH.encode(),
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(raw), "-af",
                    f"volume={gain_db}dB", *extra, str(path)], check=True)  # fmt: skip
    return path


@pytest.fixture
def store(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media", max_bytes=50 * 2**20)


def ingest(store: MediaStore, path: Path):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        return store.ingest(fh, path.name)


# (name, how to make it, highest true peak accepted in the stored file). Speech is held
# to "never clips": the Opus encoder rebuilds the peaks the limiter shaved off peaky
# synthetic speech (docs/audio.md, "True peak"); steady signals keep the −1 dBTP limit.
CASES = [
    ("quiet speech wav (-35 LUFS)", lambda p: speech(p / "quiet.wav", -17), 0.5),
    ("hot speech mp3", lambda p: speech(p / "hot.mp3", -1, "-b:a", "128k"), 0.5),
    ("stereo speech m4a", lambda p: speech(p / "stereo.m4a", -6, "-ac", "2"), 0.5),
    ("chirp mp3", lambda p: speechlike(p / "chirp.mp3", 0.8), -1.0),
    ("stereo noise ogg", lambda p: lavfi(p / "noise.ogg", "anoisesrc=d=6:c=pink:a=0.3", "-ac", "2"), -1.0),
    ("short 1 s tone", lambda p: lavfi(p / "tone.wav", "sine=frequency=440:duration=1"), -1.0),
]


@pytest.mark.parametrize(("name", "make", "max_peak"), CASES, ids=[c[0] for c in CASES])
def test_uploads_come_out_at_the_target_loudness(  # type: ignore[no-untyped-def]
    store: MediaStore, tmp_path: Path, name: str, make, max_peak: float
) -> None:
    src = make(tmp_path)
    before, _ = ebur128(src)
    stored = ingest(store, src)
    integrated, peak = ebur128(stored.path)
    assert abs(integrated - TARGET.integrated_lufs) <= 1.0, f"{name}: {before} -> {integrated} LUFS"
    # The value the operator sees is the independent measurement of the stored file.
    assert stored.loudness_lufs is not None and abs(stored.loudness_lufs - integrated) <= 0.2
    assert stored.true_peak_dbtp is not None and abs(stored.true_peak_dbtp - peak) <= 0.2
    assert peak <= max_peak, f"{name}: true peak {peak} dBTP"
    assert stored.warnings == ()


def test_the_same_upload_gives_the_same_bytes(store: MediaStore, tmp_path: Path) -> None:
    src = speechlike(tmp_path / "a.wav", 0.1, seconds=3)
    first = ingest(store, src)
    data = first.path.read_bytes()
    second = ingest(store, src)
    assert second.sha256 == first.sha256 and second.path.read_bytes() == data


def test_warnings_for_silent_clipped_and_far_too_quiet(store: MediaStore, tmp_path: Path) -> None:
    silent = ingest(store, lavfi(tmp_path / "silent.wav", "anullsrc=r=44100:cl=mono", "-t", "3"))
    assert [w.code for w in silent.warnings] == ["audio.warn.silent"]
    assert silent.loudness_lufs is None and silent.normalization == "none"  # silence is not amplified

    expr = "clip(3*sin(2*PI*440*t)*(0.3+0.7*abs(sin(PI*t*1.7)))\\,-1\\,1)"
    clipped = ingest(store, lavfi(tmp_path / "clipped.wav", f"aevalsrc={expr}:s=44100:d=4"))
    assert [w.code for w in clipped.warnings] == ["audio.warn.clipped"]
    assert abs(ebur128(clipped.path)[0] - TARGET.integrated_lufs) <= 1.0

    whisper = ingest(store, speech(tmp_path / "whisper.wav", -40))
    codes = [w.code for w in whisper.warnings]
    assert codes == ["audio.warn.too_quiet"]
    assert float(whisper.warnings[0].params["gain"]) >= 30  # the operator is told how much it was raised

    clean = ingest(store, speech(tmp_path / "clean.wav", -6))
    assert clean.warnings == ()
    # A beep shorter than one 400 ms BS.1770 block has no loudness to normalize, but is no silence.
    beep = ingest(store, lavfi(tmp_path / "beep.wav", "sine=frequency=800:duration=0.3"))
    assert beep.warnings == () and beep.normalization == "none"
    # A full-scale but clean sine is loud, not clipped.
    full = ingest(store, lavfi(tmp_path / "full.wav", "aevalsrc=0.999*sin(2*PI*440*t):s=44100:d=3"))
    assert full.warnings == ()


def test_video_and_garbage_are_refused_and_leave_nothing(store: MediaStore, tmp_path: Path) -> None:
    garbage = tmp_path / "x.mp3"
    garbage.write_bytes(b"ID3" + b"\x00" * 4000)
    with pytest.raises(UserError) as exc:
        ingest(store, garbage)
    assert exc.value.status == 415
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_generated_assets_are_deterministic_and_normalized(store: MediaStore, tmp_path: Path) -> None:
    for name in ("chime-intro", "chime-outro"):
        a = generate(name, tmp_path / "a" / f"{name}.wav")
        b = generate(name, tmp_path / "b" / f"{name}.wav")
        assert a.read_bytes() == b.read_bytes()
        stored = store.ingest_path(a, f"asset:{name}")
        assert 2.0 <= stored.duration_s <= ASSETS[name].seconds + 0.1
        assert abs(ebur128(stored.path)[0] - TARGET.integrated_lufs) <= 1.0
    intro, outro = (generate(n, tmp_path / f"{n}.wav").read_bytes() for n in ("chime-intro", "chime-outro"))
    assert intro != outro
