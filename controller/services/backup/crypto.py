"""The encrypted container of a backup: a passphrase, scrypt, AES-256-GCM in chunks.

Layout (docs/deployment.md, "Backup and restore"):

    b"CCBACKUP" | u32 header length | header (JSON, UTF-8) | frames...
    frame = u32 length | AES-GCM ciphertext of one chunk (with its 16-byte tag)

The header names the format version, the KDF and its parameters (scrypt n, r, p, salt),
the cipher, the chunk size, a 7-byte nonce prefix and a passphrase check. The key comes
from scrypt (64 bytes: 32 for AES, 32 whose SHA-256 is the check), so a wrong passphrase
is told apart from a damaged file before anything is decrypted. Chunk i's nonce is
prefix | i (u32) | final flag (1 byte), the whole header is each chunk's associated data:
a changed header, a reordered, dropped or altered chunk, a cut-off end (no final chunk)
or bytes after the end all fail authentication (the STREAM construction).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"CCBACKUP"
FORMAT = 1
CHUNK = 1024 * 1024
# scrypt cost: 2^15 x 8 x 128 B = 32 MiB and ~0.1 s per derivation on a small server.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_MAX_HEADER = 64 * 1024
_MAX_FRAME = 64 * 1024 * 1024 + 16
_U32 = struct.Struct(">I")


class BackupError(Exception):
    """A backup cannot be made or restored; the message says why, for an operator."""


class WrongPassphrase(BackupError):
    pass


class DamagedBackup(BackupError):
    """Not a backup, truncated, or altered since it was written."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    raw = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return raw[:32], hashlib.sha256(raw[32:]).digest()


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    if index >= 2**32:
        raise BackupError("backup too large for one container (2^32 chunks)")
    return prefix + _U32.pack(index) + (b"\x01" if final else b"\x00")


class EncryptingWriter:
    """A write-only file object: what is written comes out encrypted into `out`.

    `close()` writes the final chunk (never closes `out`)."""

    def __init__(self, out: IO[bytes], passphrase: str, *, chunk: int = CHUNK,
                 n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> None:
        if not passphrase:
            raise BackupError("an empty passphrase is not allowed")
        salt, prefix = os.urandom(16), os.urandom(7)
        key, check = _derive(passphrase, salt, n, r, p)
        header = json.dumps({
            "format": FORMAT, "cipher": "AES-256-GCM", "chunk": chunk, "nonce_prefix": _b64(prefix),
            "kdf": {"name": "scrypt", "n": n, "r": r, "p": p, "salt": _b64(salt)}, "check": _b64(check),
        }, sort_keys=True).encode()  # fmt: skip
        self._aad = MAGIC + _U32.pack(len(header)) + header
        out.write(self._aad)
        self._out, self._aes, self._prefix, self._chunk = out, AESGCM(key), prefix, chunk
        self._buf = bytearray()
        self._index = 0
        self._closed = False
        self.written = len(self._aad)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed backup")
        self._buf += data
        while len(self._buf) > self._chunk:  # keep at least one byte back for the final chunk
            self._emit(bytes(self._buf[: self._chunk]), final=False)
            del self._buf[: self._chunk]
        return len(data)

    def flush(self) -> None:
        pass

    def _emit(self, plain: bytes, *, final: bool) -> None:
        sealed = self._aes.encrypt(_nonce(self._prefix, self._index, final), plain, self._aad)
        self._out.write(_U32.pack(len(sealed)) + sealed)
        self.written += 4 + len(sealed)
        self._index += 1

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buf), final=True)
            self._buf.clear()
            self._closed = True


def read_header(src: IO[bytes]) -> tuple[bytes, dict[str, Any]]:
    """(associated data, header) of a backup file; DamagedBackup when it is not one."""
    magic = src.read(len(MAGIC))
    if magic != MAGIC:
        raise DamagedBackup("not a communecast backup (wrong magic bytes)")
    raw_len = src.read(4)
    if len(raw_len) != 4:
        raise DamagedBackup("backup truncated in its header")
    (length,) = _U32.unpack(raw_len)
    if length > _MAX_HEADER:
        raise DamagedBackup("backup header too large")
    raw = src.read(length)
    try:
        header = json.loads(raw)
        kdf = header["kdf"]
        ok = (header["format"] == FORMAT and header["cipher"] == "AES-256-GCM" and kdf["name"] == "scrypt"
              and 2 <= int(kdf["n"]) <= 2**20 and 1 <= int(kdf["r"]) <= 32 and 1 <= int(kdf["p"]) <= 16
              and 1024 <= int(header["chunk"]) <= _MAX_FRAME - 16)  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedBackup(f"backup header unreadable: {exc}") from exc
    if not ok:
        if header.get("format") != FORMAT:
            got = header.get("format")
            raise DamagedBackup(f"backup format {got!r}: this communecast reads format {FORMAT}")
        raise DamagedBackup("backup header has parameters out of bounds")
    return magic + raw_len + raw, header


class DecryptingReader:
    """A read-only file object over an encrypted backup; every chunk is authenticated
    before a byte of it is returned."""

    def __init__(self, src: IO[bytes], passphrase: str) -> None:
        self._aad, header = read_header(src)
        kdf = header["kdf"]
        try:
            salt = base64.b64decode(kdf["salt"], validate=True)
            check = base64.b64decode(header["check"], validate=True)
            self._prefix = base64.b64decode(header["nonce_prefix"], validate=True)
        except ValueError as exc:
            raise DamagedBackup(f"backup header unreadable: {exc}") from exc
        if len(self._prefix) != 7:
            raise DamagedBackup("backup header has a bad nonce prefix")
        key, mine = _derive(passphrase, salt, int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
        if not hmac.compare_digest(mine, check):
            raise WrongPassphrase("wrong passphrase for this backup")
        self._src, self._aes = src, AESGCM(key)
        self._index = 0
        self._buf = b""
        self._pos = 0
        self._done = False
        self.header = header

    def readable(self) -> bool:
        return True

    def _next(self) -> None:
        raw_len = self._src.read(4)
        if len(raw_len) != 4:
            raise DamagedBackup("backup truncated (its last chunk is missing)")
        (length,) = _U32.unpack(raw_len)
        if not 16 <= length <= _MAX_FRAME:
            raise DamagedBackup("backup damaged (a chunk has an impossible length)")
        sealed = self._src.read(length)
        if len(sealed) != length:
            raise DamagedBackup("backup truncated inside a chunk")
        for final in (False, True):
            try:
                plain = self._aes.decrypt(_nonce(self._prefix, self._index, final), sealed, self._aad)
            except InvalidTag:
                continue
            self._index += 1
            self._buf, self._pos = plain, 0
            if final:
                self._done = True
                if self._src.read(1):
                    raise DamagedBackup("backup damaged (data after its last chunk)")
            return
        raise DamagedBackup(f"backup damaged or altered (chunk {self._index} fails authentication)")

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if self._pos >= len(self._buf):
                if self._done:
                    break
                self._next()
                continue
            take = len(self._buf) - self._pos if n < 0 else min(n - len(out), len(self._buf) - self._pos)
            out += self._buf[self._pos : self._pos + take]
            self._pos += take
        return bytes(out)

    def drain(self) -> None:
        """Authenticate what is left (the end of the stream included)."""
        while not self._done:
            self._next()
