"""Text -> bulletin audio: normalize the Vietnamese text, pick the engine for the voice,
synthesize with a time limit, condition the speech for horns. The caller then sends the
WAV through the same loudness pipeline as any upload (controller/services/media.py)."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from controller.core.errors import UserError
from controller.services.tts.base import (
    MAX_RATE,
    MIN_RATE,
    OTHER_VOICES,
    VOICES,
    TtsEngine,
    TtsError,
    TtsTimeout,
)
from controller.services.tts.espeak import EspeakEngine
from controller.services.tts.normalize_vi import normalize
from controller.services.tts.piper import PiperEngine

log = logging.getLogger(__name__)

# Synthetic speech is much peakier than a voice through a microphone (a peak-to-loudness
# ratio near 20 dB); a gentle compressor and a limiter bring it to what a horn can carry
# at the loudness target without the normalizer's limiter having to squash it.
CONDITION = (
    "highpass=f=120,"
    "acompressor=threshold=0.1:ratio=4:attack=3:release=80:makeup=2,"
    "alimiter=limit=0.5:level=false:latency=true,"
    "apad=pad_dur=0.3"
)


@dataclass(frozen=True)
class Speech:
    wav: Path
    spoken_text: str
    engine: str
    voice: str
    rate: float


class TtsService:
    def __init__(
        self,
        engines: list[TtsEngine],
        *,
        max_chars: int = 5000,
        timeout_s: float = 120.0,
    ) -> None:
        self.engines = engines  # first engine that has the voice wins
        self.max_chars = max_chars
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: object) -> TtsService:
        engines: list[TtsEngine] = []
        models = getattr(settings, "tts_piper_models", {}) or {}
        for voice, path in models.items():
            if voice not in VOICES or not Path(path).is_file():
                log.warning("Piper model for %s not usable (%s): that voice stays on espeak-ng", voice, path)
        if models:
            engines.append(PiperEngine(models, getattr(settings, "tts_piper_executable", "piper")))
        engines.append(EspeakEngine(getattr(settings, "tts_espeak_executable", "espeak-ng")))
        return cls(
            engines,
            max_chars=getattr(settings, "tts_max_chars", 5000),
            timeout_s=getattr(settings, "tts_timeout_s", 120.0),
        )

    def engine_for(self, voice: str) -> TtsEngine:
        for engine in self.engines:
            if voice in engine.voices():
                return engine
        raise UserError(422, "tts.bad_voice")

    def validate(self, text: str, voice: str, rate: float) -> str:
        """Check the request and return the text as it will be spoken."""
        if voice not in VOICES and voice not in OTHER_VOICES:
            raise UserError(422, "tts.bad_voice")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise UserError(422, "tts.bad_rate")
        stripped = text.strip()
        if not stripped:
            raise UserError(422, "tts.text_empty")
        if len(stripped) > self.max_chars:
            raise UserError(422, "tts.text_too_long", limit=self.max_chars, length=len(stripped))
        spoken = normalize(stripped) if voice in VOICES else " ".join(stripped.split())
        if not any(ch.isalpha() for ch in spoken):
            raise UserError(422, "tts.nothing_to_say")
        return spoken

    def synthesize(self, text: str, voice: str, rate: float, work: Path) -> Speech:
        spoken = self.validate(text, voice, rate)
        engine = self.engine_for(voice)
        raw = work / "tts-raw.wav"
        try:
            engine.synthesize(spoken, voice, rate, raw, timeout=self.timeout_s)
        except TtsTimeout as exc:
            log.warning("TTS timed out: %s", exc)
            raise UserError(504, "tts.timeout", seconds=round(self.timeout_s)) from exc
        except TtsError as exc:
            log.warning("TTS failed: %s", exc)
            raise UserError(500, "tts.failed") from exc
        out = work / "tts.wav"
        proc = subprocess.run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(raw),
             "-af", CONDITION, "-ac", "1", "-ar", "48000", "-c:a", "pcm_s16le",
             "-fflags", "+bitexact", "-flags:a", "+bitexact", "-y", str(out)],
            capture_output=True, timeout=self.timeout_s, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            log.warning("TTS conditioning failed: %s", proc.stderr.decode(errors="replace")[-500:])
            raise UserError(500, "tts.failed")
        return Speech(out, spoken, engine.name, voice, rate)
