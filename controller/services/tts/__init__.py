"""Vietnamese text-to-speech: an engine interface (espeak-ng built in, Piper by model path),
the text normalizer, and the service the API calls (docs/audio.md)."""

from controller.services.tts.base import VOICES, TtsEngine, TtsError, TtsTimeout
from controller.services.tts.normalize_vi import normalize, read_int
from controller.services.tts.service import Speech, TtsService

__all__ = [
    "VOICES", "Speech", "TtsEngine", "TtsError", "TtsService", "TtsTimeout", "normalize", "read_int",
]
