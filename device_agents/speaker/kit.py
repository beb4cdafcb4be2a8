"""What playing an item needs on a speaker station, handed to file and stream playback alike.

A narrow bundle, not the role: playback code sees the output, the media cache, the clock,
the on-air context, the event log and the settings, and nothing it could reach into.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_agents.common.clock import Clock
from device_agents.common.config import AgentConfig
from device_agents.common.media_cache import MediaCache
from device_agents.hardware.audio import AudioOutput
from device_agents.host.events import EventLog
from device_agents.speaker.on_air import OnAir
from device_agents.speaker.volume import Volume


@dataclass(frozen=True)
class SpeakerKit:
    uid: str
    config: AgentConfig
    clock: Clock
    audio: AudioOutput
    media: MediaCache
    on_air: OnAir
    events: EventLog
    volume: Volume
