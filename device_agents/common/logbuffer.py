"""The agent's recent log lines in memory, secrets redacted, for the `fetch_logs` diagnostic.

A technician reads what the station logged lately without a shell on it. Redaction
happens when a line is recorded, so a secret never sits in the buffer: key=value and
JSON-style passwords/tokens, Bearer tokens, credentials in URLs, and the exact values
registered with `add_secret` (the broker password from the agent config).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque

MAX_LINE = 400
REDACTED = "***"

_PATTERNS = [
    # key=value / key: value / "key": "value" for secret-looking keys
    re.compile(
        r"""(?ix)
        (?P<key>["']?[a-z0-9_\-]*(?:passw(?:or)?d|passwd|pwd|secret|token|api[_-]?key|private[_-]?key|
            authorization|auth[_-]?code|enroll(?:ment)?[_-]?code)[a-z0-9_\-]*["']?)
        (?P<sep>\s*[:=]\s*)
        (?P<value>"[^"]*"|'[^']*'|[^\s,;&}]+)
        """
    ),
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@"),
]


def redact(line: str, secrets: frozenset[str] = frozenset()) -> str:
    for secret in secrets:
        if secret:
            line = line.replace(secret, REDACTED)
    line = _PATTERNS[1].sub(lambda m: f"{m[1]} {REDACTED}", line)
    line = _PATTERNS[2].sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", line)
    line = _PATTERNS[0].sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", line)
    return line


class LogBuffer(logging.Handler):
    """A ring buffer of formatted, redacted log lines (thread-safe: pymodbus logs from threads)."""

    def __init__(self, capacity: int = 2000) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._lines: deque[str] = deque(maxlen=capacity)
        self._secrets: frozenset[str] = frozenset()
        self._guard = threading.Lock()

    def add_secret(self, value: str | None) -> None:
        """Redact this exact value wherever it appears (short values would mangle lines)."""
        if value and len(value) >= 6:
            with self._guard:
                self._secrets = self._secrets | {value}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a bad format string must not break logging
            text = f"{record.levelname} {record.name}: {record.msg!r}"
        lines = [redact(part, self._secrets)[:MAX_LINE] for part in text.splitlines() or [""]]
        with self._guard:
            self._lines.extend(lines)

    def tail(self, n: int) -> list[str]:
        with self._guard:
            return list(self._lines)[-n:] if n > 0 else []


_INSTALLED: LogBuffer | None = None


def install(capacity: int = 2000) -> LogBuffer:
    """The process's one buffer, attached to the root logger on first use."""
    global _INSTALLED
    if _INSTALLED is None:
        _INSTALLED = LogBuffer(capacity)
        # The root level is the process's choice (`communecast agent run`: INFO by default).
        logging.getLogger().addHandler(_INSTALLED)
    return _INSTALLED
