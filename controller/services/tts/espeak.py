"""espeak-ng: offline, small, on every Debian/Raspberry Pi OS; has all three regional voices."""

from __future__ import annotations

from pathlib import Path

from controller.services.tts.base import run_engine

# espeak-ng's own names (`espeak-ng --voices=vi`).
ESPEAK_VOICES = {"vi-north": "vi", "vi-central": "vi-vn-x-central", "vi-south": "vi-vn-x-south",
                 "en-us": "en-us"}
# Words per minute at rate 1.0: a little slower than espeak's 175, because horns are
# heard outdoors, over distance and echo, where slower speech stays intelligible.
BASE_WPM = 150


class EspeakEngine:
    name = "espeak-ng"

    def __init__(self, executable: str = "espeak-ng") -> None:
        self.executable = executable

    def voices(self) -> tuple[str, ...]:
        return tuple(ESPEAK_VOICES)

    def synthesize(self, text: str, voice: str, rate: float, out_wav: Path, *, timeout: float) -> None:
        wpm = max(80, min(450, round(BASE_WPM * rate)))
        # -b 1: the input is UTF-8; --stdin: the text is data on stdin, never an argument.
        cmd = [self.executable, "-v", ESPEAK_VOICES[voice], "-s", str(wpm), "-b", "1",
               "-w", str(out_wav), "--stdin"]  # fmt: skip
        run_engine(cmd, text, out_wav, timeout=timeout)
