"""Owner-only files for the controller and the agent (issue 16).

A service inherits its parent's umask, usually 022: the SQLite database, media, keys'
directory and the agent's store came out readable by every local user. The entry points
call `owner_only()` first, so everything they create is 0600 / 0700 unless a file says
otherwise (the broker's password files are 0640 on purpose: the broker may read them
through a shared group, controller.services.broker_auth)."""

from __future__ import annotations

import os

UMASK = 0o077


def owner_only() -> None:
    """Set the process umask to 077 (before anything is written)."""
    os.umask(UMASK)
