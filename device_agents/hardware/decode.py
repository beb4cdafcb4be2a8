"""Decode audio files to raw PCM: opusdec for the controller's Ogg/Opus, ffmpeg for the rest.

Decoding happens before the scheduled start instant so that the start itself is just "write
samples". Every file is decoded to the one format the output path expects: signed 16-bit
little-endian mono PCM at the output's rate.

Two decoders, chosen per file by its first bytes (not its name):

- opusdec (Debian/Raspberry Pi OS package opus-tools) for mono Ogg/Opus, which is what the
  controller stores and sends (controller/services/media.py, inline emergency clips too). It
  decodes straight at the output rate (libopus decodes at 8/12/16/24/48 kHz natively) in about
  4 MB of RSS, where ffmpeg with its ~200 shared libraries needs ~55 MB: on a Pi Zero 2 W class
  board (512 MB) that is the difference between the agent fitting its 60 MB budget while playing
  or not (`communecast bench agent`, docs/emergency.md).
- ffmpeg for anything else (MP3, WAV, M4A, stereo Opus...) and for Ogg/Opus too when opusdec is
  not installed, so an agent with ffmpeg alone still plays everything. `decoder_note()` says
  which it will use; the speaker logs it once at start.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLE_WIDTH = 2  # bytes per sample: signed 16-bit little endian, mono
# libopus decodes at these rates itself; at any other the file goes to ffmpeg's resampler.
OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})


class AudioDecodeError(Exception):
    """A file could not be decoded; the message names the file, the decoder and its stderr."""


def opusdec_path() -> str | None:
    """opusdec on PATH, or None (then Ogg/Opus is decoded with ffmpeg as well)."""
    return shutil.which("opusdec")


def decoder_note() -> str:
    """One line for the start log: which decoder each kind of file gets, and what to install."""
    ffmpeg = shutil.which("ffmpeg")
    rest = "ffmpeg for other formats" if ffmpeg else "NO ffmpeg for other formats (apt-get install ffmpeg)"
    if opusdec_path():
        return f"audio decoder: opusdec for Ogg/Opus (the controller's media), {rest}"
    if not ffmpeg:
        return ("audio decoder: NONE: neither opusdec nor ffmpeg is installed "
                "(apt-get install opus-tools ffmpeg)")
    return ("audio decoder: ffmpeg for everything: opusdec is not installed, so every decode costs "
            "~50 MB more RSS (apt-get install opus-tools)")  # fmt: skip


@functools.cache
def log_decoder_note() -> None:
    """Say once per process, at the speaker's start, which decoder it will use and why."""
    note = decoder_note()
    (log.info if opusdec_path() and shutil.which("ffmpeg") else log.warning)("%s", note)


def is_mono_ogg_opus(path: Path) -> bool:
    """True when the file starts with an Ogg page carrying a one-channel OpusHead (RFC 7845)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(27 + 255 + 19)
    except OSError:
        return False
    if len(head) < 27 or head[:4] != b"OggS":
        return False
    packet = 27 + head[26]  # the fixed page header, then one lacing byte per segment
    opus_head = head[packet : packet + 19]
    return len(opus_head) >= 10 and opus_head[:8] == b"OpusHead" and opus_head[9] == 1


async def _run(cmd: Sequence[str], stdin: int | None, what: str, path: Path) -> bytes:
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise AudioDecodeError(f"{what} is not installed or not on PATH") from exc
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        detail = err.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise AudioDecodeError(f"cannot decode {path} ({what}): {detail}")
    if len(out) % SAMPLE_WIDTH:
        out = out[: len(out) - len(out) % SAMPLE_WIDTH]
    return out


async def _opusdec(opusdec: str, path: Path, rate: int) -> bytes:
    # The file is opusdec's stdin, so no file name can be read as an option or a URL.
    # --no-dither: plain rounding to 16 bits like ffmpeg's, the same bytes on every run.
    cmd = [opusdec, "--quiet", "--no-dither", "--rate", str(rate), "-", "-"]
    try:
        with path.open("rb") as fh:
            return await _run(cmd, fh.fileno(), "opusdec", path)
    except OSError as exc:
        raise AudioDecodeError(f"cannot decode {path} (opusdec): {exc}") from exc


async def _ffmpeg(path: Path, rate: int) -> bytes:
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        # "file:" stops a name such as "http:x.mp3" or "-x.wav" being read as
        # a protocol or an option.
        f"file:{path}",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-acodec",
        "pcm_s16le",
        "-f",
        "s16le",
        "pipe:1",
    ]
    return await _run(cmd, None, "ffmpeg", path)


async def _decode_one(path: Path, rate: int, opusdec: str | None) -> bytes:
    if opusdec is not None and rate in OPUS_RATES and is_mono_ogg_opus(path):
        return await _opusdec(opusdec, path, rate)
    return await _ffmpeg(path, rate)


async def decode_pcm(files: Sequence[Path], rate: int = 16000) -> bytes:
    """Decode ``files`` to S16LE mono PCM at ``rate`` and concatenate them in order.

    Files are decoded one process each (in parallel) rather than with ffmpeg's concat filter,
    which refuses inputs whose channel layouts differ.
    """
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    tool = opusdec_path()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_decode_one(Path(f), rate, tool)) for f in files]
    except* AudioDecodeError as failed:
        # One clear error for the caller, not an ExceptionGroup; the TaskGroup
        # has already cancelled (and so killed) the other decoder processes.
        raise failed.exceptions[0] from None
    return b"".join(task.result() for task in tasks)
