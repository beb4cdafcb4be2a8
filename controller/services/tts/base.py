"""The text-to-speech engine interface: text in (as data, never through a shell), WAV out."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Protocol

# Public voice names (API) -> a regional Vietnamese voice. Engines map them to their own.
VOICES = ("vi-north", "vi-central", "vi-south")
# Other languages, for alerts that arrive in them (CAP <language>, docs/cap.md); their text
# is spoken as written (the normalizer is Vietnamese).
OTHER_VOICES = ("en-us",)
MIN_RATE = 0.5
MAX_RATE = 2.0


class TtsError(Exception):
    """The engine failed (bad exit, no output)."""


class TtsTimeout(TtsError):
    pass


class TtsEngine(Protocol):
    """One speech engine. ``rate`` is a speed factor: 1.0 normal, 0.5 half speed, 2.0 double."""

    name: str

    def voices(self) -> tuple[str, ...]: ...

    def synthesize(self, text: str, voice: str, rate: float, out_wav: Path, *, timeout: float) -> None: ...


def run_engine(cmd: list[str], text: str, out_wav: Path, *, timeout: float) -> None:
    """Run an engine process with the text on stdin; no shell, bounded time, checked output."""
    try:
        proc = subprocess.run(
            cmd, input=text.encode("utf-8"), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out_wav.unlink(missing_ok=True)
        raise TtsTimeout(f"{cmd[0]} took longer than {timeout:.0f}s") from exc
    except FileNotFoundError as exc:
        raise TtsError(f"{cmd[0]} is not installed") from exc
    if proc.returncode != 0 or not out_wav.exists() or out_wav.stat().st_size <= 44:
        raise TtsError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
