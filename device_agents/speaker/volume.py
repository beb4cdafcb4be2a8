"""The station's volume: set by desired state or a diagnostic, kept in the store across restarts."""

from __future__ import annotations

from device_agents.common.store import AgentStore


class Volume:
    def __init__(self, store: AgentStore, default: int) -> None:
        self._store = store
        self._default = default

    def get(self) -> int:
        return int(self._store.get("volume", str(self._default)) or self._default)

    def set(self, volume: int) -> None:
        self._store.put("volume", str(volume))
