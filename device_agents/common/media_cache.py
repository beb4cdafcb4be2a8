"""Local media cache: download by content address, resume with Range, verify SHA-256.

A file is used only if its bytes hash to the name the signed schedule gave, so a
tampered mirror or a broken download can never reach the horn. Audio that came inside a
signed PLAY (`MediaRef.inline`, docs/protocol.md) enters through `put_verified`, under the
same rule, and is then found by `ensure` as if it had been downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from pathlib import Path

import httpx

from protocol.messages import MediaRef

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class MediaError(Exception):
    pass


class MediaCache:
    def __init__(
        self,
        directory: Path,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """`http`: a client to share (a fleet of simulated stations shares one); by default
        the cache opens its own on first use and keeps it (one TLS context per station)."""
        self.directory = directory
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout_s
        self._http = http
        self._owns_http = http is None
        self._locks: dict[str, asyncio.Lock] = {}
        self.bytes_downloaded = 0  # over the air: what a 4G data plan pays for
        self.downloads = 0  # HTTP requests for media (a resumed download counts again)
        self.stored_inline = 0  # files that came inside a signed PLAY (put_verified)
        directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.directory / f"{sha256}.media"

    def has(self, ref: MediaRef) -> bool:
        path = self.path_for(ref.sha256)
        return path.exists() and path.stat().st_size == ref.size

    async def ensure(self, ref: MediaRef, *, attempts: int = 6) -> Path:
        """Return the verified local file, downloading (and resuming) as needed."""
        lock = self._locks.setdefault(ref.sha256, asyncio.Lock())
        async with lock:
            if self.has(ref):
                return self.path_for(ref.sha256)
            delay = 0.5
            last: Exception | None = None
            for _ in range(attempts):
                try:
                    return await self._download(ref)
                except (httpx.HTTPError, MediaError, OSError) as exc:
                    last = exc
                    log.info("download of %s failed (%s); retrying", ref.sha256[:12], exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            raise MediaError(f"could not fetch media {ref.sha256}: {last}")

    def put_verified(self, ref: MediaRef, data: bytes) -> Path:
        """Store audio that did not come over HTTP (the bytes inside a signed PLAY), only if it
        is exactly what `ref` names: `size` bytes hashing to `sha256`. Raise MediaError
        otherwise, and nothing is written. Written aside and renamed, as a download is."""
        if len(data) != ref.size:
            raise MediaError(f"{len(data)} bytes where the reference says {ref.size}")
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise MediaError(f"the bytes do not hash to {ref.sha256}")
        final = self.path_for(ref.sha256)
        if self.has(ref):
            return final
        aside = final.with_suffix(".inline")  # never the .part a download may be resuming
        aside.write_bytes(data)
        os.replace(aside, final)
        self.stored_inline += 1
        return final

    def client(self) -> httpx.AsyncClient:
        """The cache's HTTP client (opened now if it has none yet), to share with the station's
        other requests to the controller: each client holds a TLS context with the CA bundle
        loaded, ~0.8 MB of a Pi's RSS (issue 21)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http

    async def close(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _download(self, ref: MediaRef) -> Path:
        final = self.path_for(ref.sha256)
        part = final.with_suffix(".part")
        have = part.stat().st_size if part.exists() else 0
        if have > ref.size:
            part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = f"{self.base_url}/media/{ref.sha256}"
        self.downloads += 1
        async with self.client().stream("GET", url, headers=headers) as resp:
            if resp.status_code == 200:
                have = 0  # server ignored the range: start over
            elif resp.status_code != 206:
                raise MediaError(f"HTTP {resp.status_code} for {url}")
            with part.open("r+b" if have else "wb") as fh:
                fh.seek(have)
                fh.truncate()
                async for chunk in resp.aiter_bytes(CHUNK):
                    fh.write(chunk)
                    self.bytes_downloaded += len(chunk)
        digest = hashlib.sha256()
        with part.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != ref.sha256:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise MediaError(f"checksum mismatch for {ref.sha256}")
        os.replace(part, final)
        return final
