"""Media pipeline: validate an upload, normalize and transcode it for horn loudspeakers,
store it by SHA-256.

Horns reproduce roughly 300 Hz-7 kHz and carry speech, so every upload becomes one format:
Opus, mono, 48 kHz, 32 kbit/s (VoIP tuning), in Ogg, loudness-normalized to one target
(controller/services/audio_pipeline.py, docs/audio.md); bit-exact flags make the same
input give the same bytes, so the same upload is stored once. ffprobe (through pydub's
mediainfo) decides whether a file is audio and how long it claims to be: anything longer than
its lane allows is refused before any decoding (and ``-t`` stops a file that lied). ffmpeg
streams every pass so memory stays flat; each job holds a slot of its lane (ordinary or
emergency, controller/services/audio_lanes.py) and ends by the job deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pydub.utils import mediainfo_json
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.core.errors import UserError
from controller.core.i18n import human_size
from controller.db.models import Media
from controller.services.audio_lanes import AudioLanes, Lane
from controller.services.audio_pipeline import (
    AudioWarning,
    DecodedTooLong,
    LoudnessTarget,
    PipelineError,
    PipelineResult,
    PipelineTimeout,
    process,
)

if TYPE_CHECKING:
    from controller.services.tts import TtsService

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
    loudness_lufs: float | None = None  # of the stored file, measured independently (ebur128)
    true_peak_dbtp: float | None = None
    source_loudness_lufs: float | None = None
    normalization: str = "none"
    warnings: tuple[AudioWarning, ...] = ()


class MediaStore:
    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        bitrate: str = "32k",
        target: LoudnessTarget | None = None,
        lanes: AudioLanes | None = None,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.bitrate = bitrate
        self.target = target or LoudnessTarget()
        self.lanes = lanes or AudioLanes()
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.opus"

    def ingest(self, source: BinaryIO, original_name: str, *, emergency: bool = False) -> StoredMedia:
        """Copy the upload aside, check it, normalize + transcode it, file it under its hash.

        ``emergency`` runs it in the emergency lane, with that lane's shorter length limit
        (the caller checks the sender may broadcast emergencies)."""
        with tempfile.TemporaryDirectory(dir=self.root / "tmp") as work_dir:
            work = Path(work_dir)
            raw = work / "upload"
            source_sha = self._copy_limited(source, raw)
            limit = self.lanes.upload_limit_s(emergency)
            return self._ingest_file(raw, source_sha, original_name, work, emergency, limit)

    def ingest_path(self, path: Path, original_name: str, *, emergency: bool = False) -> StoredMedia:
        """Ingest a file the controller made itself (TTS, generated chimes): same pipeline."""
        with tempfile.TemporaryDirectory(dir=self.root / "tmp") as work_dir:
            return self._ingest_file(path, _sha256_file(path), original_name, Path(work_dir), emergency,
                                     self.lanes.max_duration_s)  # fmt: skip

    def _ingest_file(
        self, raw: Path, source_sha: str, original_name: str, work: Path, emergency: bool, limit: float
    ) -> StoredMedia:
        claimed = self._check_is_audio(raw, original_name)
        if claimed is not None and claimed > limit:
            raise UserError(413, "media.too_long", length=_minutes(claimed), limit=_minutes(limit))
        out = work / "out.opus"
        with self.lanes.slot(emergency=emergency) as lane:
            result = self._transcode(raw, out, original_name, lane, limit)
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
            loudness_lufs=result.output.integrated_lufs,
            true_peak_dbtp=result.output.true_peak_dbtp,
            source_loudness_lufs=result.source.integrated_lufs,
            normalization=result.normalization,
            warnings=tuple(result.warnings),
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
    def _check_is_audio(path: Path, name: str) -> float | None:
        """ffprobe: refuse what has no audio stream; return the length the file claims (None: unknown)."""
        try:
            info = mediainfo_json(str(path))
        except Exception as exc:  # pydub raises bare exceptions from ffprobe output
            raise UserError(415, "media.not_audio", name=name) from exc
        streams = info.get("streams") or []
        if not any(s.get("codec_type") == "audio" for s in streams):
            raise UserError(415, "media.not_audio", name=name)
        claims = [_seconds((info.get("format") or {}).get("duration"))]
        claims += [_seconds(s.get("duration")) for s in streams if s.get("codec_type") == "audio"]
        known = [c for c in claims if c is not None]
        return max(known) if known else None

    def _transcode(self, src: Path, dest: Path, name: str, lane: Lane, limit: float) -> PipelineResult:
        """Two-pass loudnorm + Opus encode + independent ebur128 check (audio_pipeline), within
        the lane's deadline, CPU priority and length cap."""
        try:
            return process(src, dest, self.target, bitrate=self.bitrate, timeout=lane.remaining(),
                           niceness=lane.niceness, max_duration_s=limit)  # fmt: skip
        except DecodedTooLong as exc:
            log.warning("%s decodes past %.0f s (its container claimed less)", name, exc.limit_s)
            raise UserError(413, "media.too_long_decoded", limit=_minutes(exc.limit_s)) from exc
        except PipelineTimeout as exc:
            log.warning("transcode of %s stopped at the job deadline: %s", name, exc)
            raise UserError(422, "media.timeout", seconds=round(self.lanes.job_timeout_s)) from exc
        except PipelineError as exc:
            log.warning("transcode of %s failed: %s", name, exc)
            raise UserError(415, "media.not_audio", name=name) from exc

    def delete_tmp(self) -> None:
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)


def _seconds(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # "N/A", missing
    return number if number >= 0 and number == number and number != float("inf") else None


def _minutes(seconds: float) -> str:
    """Minutes for a message: whole when long, one decimal under ten minutes."""
    minutes = seconds / 60
    return f"{minutes:.0f}" if minutes >= 10 or minutes == round(minutes) else f"{minutes:.1f}"


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


# ------------------------------------------------------------------ database records


def record_media(
    session: Session,
    stored: StoredMedia,
    name: str,
    user_id: int | None,
    *,
    origin: str = "upload",
) -> Media:
    """The Media row for a stored file (the same content uploaded twice is one row)."""
    row = session.get(Media, stored.sha256)
    if row is not None:
        return row
    row = Media(
        sha256=stored.sha256, original_name=name[:255], content_type=STORED_CONTENT_TYPE,
        size=stored.size, duration_s=stored.duration_s, codec=STORED_CODEC,
        source_sha256=stored.source_sha256, created_by=user_id,
        loudness_lufs=stored.loudness_lufs, true_peak_dbtp=stored.true_peak_dbtp,
        source_loudness_lufs=stored.source_loudness_lufs, normalization=stored.normalization,
        warnings=[w.to_json() for w in stored.warnings], origin=origin,
    )  # fmt: skip
    session.add(row)
    return row


async def record_speech(
    session: Session, store: MediaStore, service: TtsService, text: str, voice: str, name: str,
    user_id: int | None, *, emergency: bool = False,
) -> Media:
    """Synthesize text (rate 1.0) off the event loop and store the speech like an upload (origin "tts").

    CAP alerts and emergencies pass ``emergency``: their speech goes through the emergency lane,
    never behind ordinary uploads."""

    def make() -> StoredMedia:
        with tempfile.TemporaryDirectory(dir=store.root / "tmp") as work:
            speech = service.synthesize(text, voice, 1.0, Path(work))
            return store.ingest_path(speech.wav, name, emergency=emergency)

    stored = await asyncio.to_thread(make)
    return record_media(session, stored, name, user_id, origin="tts")


# ------------------------------------------------------------- generated audio assets

_ASSETS_LOCK = threading.Lock()


def ensure_assets(store: MediaStore, session: Session) -> list[tuple[str, Media]]:
    """Make the project's chimes and test signals (first use only) and return their media.

    The WAVs are generated into ``<media>/assets`` and go through the same pipeline as an
    upload; content addressing makes a second call (or a second controller) a no-op.
    """
    from audio_assets.generate import ASSETS, generate

    out: list[tuple[str, Media]] = []
    with _ASSETS_LOCK:
        for name in ASSETS:
            name_tag = f"asset:{name}"
            row = session.scalars(
                select(Media).where(Media.origin == "asset", Media.original_name == name_tag)
            ).first()
            if row is None or not store.path_for(row.sha256).exists():
                wav = store.root / "assets" / f"{name}.wav"
                if not wav.exists():
                    generate(name, wav)
                stored = store.ingest_path(wav, name_tag)
                row = record_media(session, stored, name_tag, None, origin="asset")
                try:
                    session.commit()
                except IntegrityError:  # another replica made the same row first
                    session.rollback()
                    row = session.get(Media, stored.sha256)
                    assert row is not None
            out.append((name, row))
    return out
