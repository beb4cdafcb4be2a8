"""Media pipeline: validate an upload, transcode it for horn loudspeakers, store it by SHA-256.

Horns reproduce roughly 300 Hz-7 kHz and carry speech, so every upload becomes one format:
Opus, mono, 48 kHz, 32 kbit/s (VoIP tuning), in Ogg; bit-exact flags make the same input
give the same bytes, so the same upload is stored once. ffprobe (through pydub's
mediainfo) decides whether a file is audio; ffmpeg streams the transcode so memory stays
flat for hour-long recordings.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydub.utils import mediainfo_json

from controller.core.errors import UserError
from controller.core.i18n import human_size

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
MIN_DURATION_S = 0.2
STORED_CONTENT_TYPE = "audio/ogg"
STORED_CODEC = "opus"


@dataclass(frozen=True)
class StoredMedia:
    sha256: str
    source_sha256: str
    size: int
    duration_s: float
    path: Path


class MediaStore:
    def __init__(self, root: Path, *, max_bytes: int, bitrate: str = "32k") -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.bitrate = bitrate
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.opus"

    def ingest(self, source: BinaryIO, original_name: str) -> StoredMedia:
        """Copy the upload aside, check it, transcode it, and file it under its hash."""
        with tempfile.TemporaryDirectory(dir=self.root / "tmp") as work_dir:
            work = Path(work_dir)
            raw = work / "upload"
            source_sha = self._copy_limited(source, raw)
            self._check_is_audio(raw, original_name)
            out = work / "out.opus"
            self._transcode(raw, out, original_name)
            duration = _duration(out)
            if duration < MIN_DURATION_S:
                raise UserError(422, "media.too_short", min_s=MIN_DURATION_S)
            sha = _sha256_file(out)
            final = self.path_for(sha)
            if not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(out, final)  # atomic: a half-written file never has the final name
            return StoredMedia(
                sha256=sha,
                source_sha256=source_sha,
                size=final.stat().st_size,
                duration_s=round(duration, 3),
                path=final,
            )

    def _copy_limited(self, source: BinaryIO, dest: Path) -> str:
        digest = hashlib.sha256()
        total = 0
        with dest.open("wb") as out:
            while chunk := source.read(CHUNK):
                total += len(chunk)
                if total > self.max_bytes:
                    raise UserError(413, "media.too_large", limit=human_size(self.max_bytes))
                digest.update(chunk)
                out.write(chunk)
        if total == 0:
            raise UserError(400, "media.empty")
        return digest.hexdigest()

    @staticmethod
    def _check_is_audio(path: Path, name: str) -> None:
        try:
            info = mediainfo_json(str(path))
        except Exception as exc:  # pydub raises bare exceptions from ffprobe output
            raise UserError(415, "media.not_audio", name=name) from exc
        streams = info.get("streams") or []
        if not any(s.get("codec_type") == "audio" for s in streams):
            raise UserError(415, "media.not_audio", name=name)

    def _transcode(self, src: Path, dest: Path, name: str) -> None:
        cmd = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-i", str(src),
            "-vn", "-sn", "-dn", "-map_metadata", "-1",
            "-ac", "1", "-ar", "48000",
            "-c:a", "libopus", "-b:a", self.bitrate, "-application", "voip",
            "-fflags", "+bitexact", "-flags:a", "+bitexact",
            "-f", "ogg", str(dest),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
        if proc.returncode != 0 or not dest.exists() or dest.stat().st_size == 0:
            log.warning("transcode of %s failed: %s", name, proc.stderr.decode(errors="replace"))
            raise UserError(415, "media.not_audio", name=name)

    def delete_tmp(self) -> None:
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)


def _duration(path: Path) -> float:
    info = mediainfo_json(str(path))
    value = (info.get("format") or {}).get("duration")
    return float(value) if value else 0.0


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
