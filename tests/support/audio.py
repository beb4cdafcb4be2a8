"""Real audio files for tests, made by ffmpeg (never checked in)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def tone(path: Path, *, freq: int = 440, seconds: float = 2.0) -> Path:
    """A sine tone in whatever container/codec the suffix implies (.wav, .mp3, .ogg, .m4a)."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"sine=frequency={freq}:duration={seconds}", "-ac", "1", str(path)],
        check=True,
    )  # fmt: skip
    return path


def chirp(path: Path, *, seconds: float = 2.0) -> Path:
    """A signal whose loudness changes over time, so its fingerprint is distinctive."""
    expr = "sin(2*PI*(300+400*t)*t)*(0.2+0.8*abs(sin(PI*t*1.7)))"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"aevalsrc={expr}:s=44100:d={seconds}", "-ac", "1", str(path)],
        check=True,
    )  # fmt: skip
    return path
