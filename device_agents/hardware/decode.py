"""Decode audio files to raw PCM with ffmpeg.

Decoding happens before the scheduled start instant so that the start itself is
just "write samples"; ffmpeg reads every format the controller may send (MP3, OGG,
WAV, M4A...) and resamples to the one format the output path expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

SAMPLE_WIDTH = 2  # bytes per sample: signed 16-bit little endian, mono


class AudioDecodeError(Exception):
    """ffmpeg could not decode a file; the message carries ffmpeg's stderr."""


async def _decode_one(path: Path, rate: int) -> bytes:
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
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise AudioDecodeError("ffmpeg is not installed or not on PATH") from exc
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        detail = err.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise AudioDecodeError(f"cannot decode {path}: {detail}")
    if len(out) % SAMPLE_WIDTH:
        out = out[: len(out) - len(out) % SAMPLE_WIDTH]
    return out


async def decode_pcm(files: Sequence[Path], rate: int = 16000) -> bytes:
    """Decode ``files`` to S16LE mono PCM at ``rate`` and concatenate them in order.

    Files are decoded one ffmpeg process each (in parallel) rather than with the
    concat filter, which refuses inputs whose channel layouts differ.
    """
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_decode_one(Path(f), rate)) for f in files]
    except* AudioDecodeError as failed:
        # One clear error for the caller, not an ExceptionGroup; the TaskGroup
        # has already cancelled (and so killed) the other ffmpeg processes.
        raise failed.exceptions[0] from None
    return b"".join(task.result() for task in tasks)
