"""A short, deterministic signature of decoded audio.

Tests compare what a simulated speaker "played" with the file the controller sent
without storing megabytes of samples: same PCM gives the same string, a different
signal gives a different one.

Format: ``d<tenths>:<energy>:<zcr>`` where ``tenths`` is the duration in tenths of a
second and each of the two hex strings has one character per 100 ms frame:

- energy: RMS on a log scale, 16 levels of 5 dB from -80 dBFS (0) to 0 dBFS (f);
- zcr: zero-crossing rate on a half-octave log scale, 16 levels.

The zero-crossing part is there because RMS alone cannot tell two tones of equal
loudness apart (a 440 Hz and an 880 Hz sine have the same energy).
"""

from __future__ import annotations

import array
import asyncio
import itertools
import math
import sys
from pathlib import Path

from device_agents.hardware.decode import decode_pcm

FRAME_S = 0.1
FINGERPRINT_RATE = 16000
_DB_FLOOR = -80.0
_DB_STEP = 5.0
_ZCR_UNIT_PER_S = 50.0


def _energy_level(frame: array.array[int]) -> int:
    mean_square = sum(s * s for s in frame) / len(frame)
    if mean_square <= 0:
        return 0
    dbfs = 10 * math.log10(mean_square) - 20 * math.log10(32768)
    return min(15, max(0, int((dbfs - _DB_FLOOR) // _DB_STEP)))


def _zcr_level(frame: array.array[int], rate: int) -> int:
    crossings = sum(1 for a, b in itertools.pairwise(frame) if (a < 0) != (b < 0))
    per_second = crossings * rate / len(frame)
    return min(15, max(0, int(2 * math.log2(1 + per_second / _ZCR_UNIT_PER_S))))


def fingerprint_pcm(pcm: bytes, rate: int) -> str:
    """Signature of S16LE mono ``pcm`` at ``rate`` Hz (see the module docstring)."""
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    tenths = round(len(samples) * 10 / rate)
    step = max(1, round(rate * FRAME_S))
    energy: list[str] = []
    zcr: list[str] = []
    for start in range(0, len(samples), step):
        frame = samples[start : start + step]
        energy.append(f"{_energy_level(frame):x}")
        zcr.append(f"{_zcr_level(frame, rate):x}")
    return f"d{tenths}:{''.join(energy)}:{''.join(zcr)}"


async def fingerprint_file(path: Path) -> str:
    """Fingerprint of a file as a speaker would play it (decoded at 16 kHz mono)."""
    pcm = await decode_pcm([Path(path)], FINGERPRINT_RATE)
    return await asyncio.to_thread(fingerprint_pcm, pcm, FINGERPRINT_RATE)
