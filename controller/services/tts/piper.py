"""Piper (neural TTS) by configuration: a model file per voice, given by path in settings.

Nothing is downloaded: the operator installs the ``piper`` program and puts the model
(``*.onnx`` with its ``*.onnx.json`` next to it) on the controller's disk, then sets
``COMMUNECAST_TTS_PIPER_MODELS='{"vi-north": "/opt/piper/vi_VN-....onnx"}'`` (docs/audio.md).
Voices without a model keep using espeak-ng.
"""

from __future__ import annotations

from pathlib import Path

from controller.services.tts.base import run_engine


class PiperEngine:
    name = "piper"

    def __init__(self, models: dict[str, Path], executable: str = "piper") -> None:
        self.models = {voice: Path(path) for voice, path in models.items()}
        self.executable = executable

    def voices(self) -> tuple[str, ...]:
        return tuple(v for v, p in self.models.items() if p.is_file())

    def synthesize(self, text: str, voice: str, rate: float, out_wav: Path, *, timeout: float) -> None:
        # Piper's length_scale is a duration factor: 2x speed = half the length.
        cmd = [self.executable, "--model", str(self.models[voice]), "--output_file", str(out_wav),
               "--length_scale", f"{1.0 / rate:.3f}"]  # fmt: skip
        run_engine(cmd, text, out_wav, timeout=timeout)
