"""Media: uploads, the generated assets and text-to-speech bulletins."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from controller.core.i18n import t
from controller.db.models import Media
from controller.schemas.common import Number, Out


class MediaWarning(Out):
    """A warning about an upload (too quiet, clipped...): a code and its message."""

    code: str
    message: str


class MediaOut(Out):
    """One content-addressed media object; `url` is where stations fetch it."""

    sha256: str
    duration_s: Number
    size: int
    content_type: str
    codec: str
    original_name: str
    url: str
    created_at: str
    loudness_lufs: Number | None = None
    true_peak_dbtp: Number | None = None
    source_loudness_lufs: Number | None = None
    normalization: str | None = None
    origin: str | None = None
    warnings: list[MediaWarning]
    title: str | None = None  # the name people see (the file name until someone renames it)
    tags: list[str] = Field(default_factory=list)
    expires_at: str | None = None

    @classmethod
    def body(cls, m: Media, language: str = "vi") -> dict[str, Any]:
        """The JSON body; warnings come as codes plus a message in the caller's language."""
        warnings = []
        for w in m.warnings or []:
            params = w.get("params") or {}
            if language == "en":
                params = {k: str(v).replace(",", ".") for k, v in params.items()}
            warnings.append({"code": w["code"], "message": t(w["code"], language, **params)})
        return {
            "sha256": m.sha256,
            "duration_s": m.duration_s,
            "size": m.size,
            "content_type": m.content_type,
            "codec": m.codec,
            "original_name": m.original_name,
            "url": f"/media/{m.sha256}",
            "title": m.title or m.original_name,
            "tags": m.tags or [],
            "expires_at": m.expires_at.isoformat() if m.expires_at else None,
            "created_at": m.created_at.isoformat(),
            "loudness_lufs": m.loudness_lufs,
            "true_peak_dbtp": m.true_peak_dbtp,
            "source_loudness_lufs": m.source_loudness_lufs,
            "normalization": m.normalization,
            "origin": m.origin,
            "warnings": warnings,
        }


class AssetOut(MediaOut):
    """A generated chime or test signal, with its name and a title in the caller's language."""

    name: str
    title: str


class Speech(Out):
    voice: str
    rate: Number
    engine: str
    spoken_text: str


class TtsMediaOut(MediaOut):
    """POST /media/tts: the bulletin, and how it was spoken."""

    tts: Speech


# -- requests ------------------------------------------------------------------------------------------
class TtsRequest(BaseModel):
    """POST /api/v1/media/tts: text read out as a bulletin."""

    text: str = Field(max_length=200_000)  # the real, friendlier limit is tts_max_chars
    voice: str = "vi-north"
    rate: float = 1.0
    title: str | None = Field(default=None, max_length=200)


class MediaPatch(BaseModel):
    """PATCH /api/v1/media/{sha256}: any of a new title, the tags, an expiry (null clears it)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=200)
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = Field(default=None, max_length=20)
    expires_at: AwareDatetime | None = None
