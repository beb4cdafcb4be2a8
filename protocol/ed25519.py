"""Ed25519 signature verification on the OpenSSL libcrypto the ssl module has already loaded.

A station only ever verifies (the controller signs). The cryptography package does that with the
same OpenSSL call (EVP_DigestVerify with an ED25519 key), but loading it maps its own statically
linked OpenSSL and Rust bindings: ~8.4 MB of RSS an agent keeps for its whole life, on a board
whose budget for the agent is 60 MB (issue 21, `communecast bench agent`). Here the call goes to
the libcrypto already in the process (asyncio imports ssl), through ctypes (~0.4 MB).

`verify` returns None when this libcrypto cannot be used (another soname, too old an OpenSSL): the
caller then uses cryptography (protocol/signing.py). OpenSSL 1.1.1 and 3.x both have these calls.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

# NID_ED25519 / EVP_PKEY_ED25519: the same number in OpenSSL 1.1.1 and 3.x.
EVP_PKEY_ED25519 = 1087
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


@functools.cache
def _libcrypto() -> Any:
    for name in ("libcrypto.so.3", "libcrypto.so.1.1"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            lib.EVP_PKEY_new_raw_public_key.restype = ctypes.c_void_p
            lib.EVP_PKEY_new_raw_public_key.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                                        ctypes.c_size_t]  # fmt: skip
            lib.EVP_PKEY_free.restype = None
            lib.EVP_PKEY_free.argtypes = [ctypes.c_void_p]
            lib.EVP_MD_CTX_new.restype = ctypes.c_void_p
            lib.EVP_MD_CTX_new.argtypes = []
            lib.EVP_MD_CTX_free.restype = None
            lib.EVP_MD_CTX_free.argtypes = [ctypes.c_void_p]
            lib.EVP_DigestVerifyInit.restype = ctypes.c_int
            lib.EVP_DigestVerifyInit.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                                 ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
            lib.EVP_DigestVerify.restype = ctypes.c_int
            lib.EVP_DigestVerify.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                             ctypes.c_char_p, ctypes.c_size_t]  # fmt: skip
            lib.ERR_clear_error.restype = None
            lib.ERR_clear_error.argtypes = []
        except AttributeError:  # an OpenSSL without raw-key EdDSA (before 1.1.1)
            continue
        return lib
    return None


def available() -> bool:
    return _libcrypto() is not None


def verify(public: bytes, signature: bytes, data: bytes) -> bool | None:
    """True if `signature` is `public`'s Ed25519 signature of `data`, False if not; None when
    libcrypto cannot be used here (then ask cryptography)."""
    lib = _libcrypto()
    if lib is None:
        return None
    if len(public) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    key = ctx = None
    try:
        key = lib.EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, None, public, len(public))
        ctx = lib.EVP_MD_CTX_new()
        if not key or not ctx:
            return False
        # Pure EdDSA: no digest (NULL), the whole message handed to one EVP_DigestVerify.
        if lib.EVP_DigestVerifyInit(ctx, None, None, None, key) != 1:
            return False
        return bool(lib.EVP_DigestVerify(ctx, signature, len(signature), data, len(data)) == 1)
    finally:
        if ctx:
            lib.EVP_MD_CTX_free(ctx)
        if key:
            lib.EVP_PKEY_free(key)
        # A failed verification leaves errors on this thread's OpenSSL queue, which the ssl
        # module shares: clear them so no later TLS call reports them as its own.
        lib.ERR_clear_error()
