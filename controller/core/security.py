"""Password hashing (scrypt, stdlib) and opaque bearer tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT_N = 2**14  # the cost of new hashes in production: 16 MB and ~50 ms of CPU each
_R, _P = 8, 1
_cost = {"n": SCRYPT_N}
_dummies: dict[int, str] = {}


def set_scrypt_cost(n: int) -> None:
    """The cost of the hashes this process makes from now on (`Settings.password_scrypt_n`, set
    once at start). A hash keeps the cost it was made with: `verify_password` reads it from the
    stored string. Its dummy (below) is made now, so the first unknown username costs one hash."""
    _cost["n"] = n
    dummy_hash()


def hash_password(password: str) -> str:
    n = _cost["n"]
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=_R, p=_P, dklen=32)
    return f"scrypt${n}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def dummy_hash() -> str:
    """A real hash of nothing anyone knows, at the current cost: checked when the username is
    unknown, so that it costs what a known one does (no user list by timing)."""
    n = _cost["n"]
    if n not in _dummies:
        _dummies[n] = hash_password(secrets.token_urlsafe(32))
    return _dummies[n]


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt_b64),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=32,
    )
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)


def mosquitto_password_hash(password: str, iterations: int = 101) -> str:
    """Mosquitto 2's password-file format: $7$iterations$salt$PBKDF2-SHA512."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
