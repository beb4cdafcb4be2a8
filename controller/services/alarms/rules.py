"""The default alarm rules: what counts as a fault, and when it is over (docs/health.md).

Each rule looks at one station and says *bad*, *good* or *cannot tell* (None: e.g. the
speaker line cannot be judged while nothing plays, so an open alarm stays open). Opening
and clearing use different thresholds (hysteresis), so a value hovering at the limit does
not open and close an alarm every minute. `for_s` is how long *bad* must last before the
alarm opens; a duration up to one telemetry period keeps detection within two periods.

| kind | bad when | good when | default for_s |
|---|---|---|---|
| offline | no message for `alarm_offline_after_s` (300 s) | online and heard from | — |
| mains_loss | mains_v < 180 V | mains_v ≥ 195 V | 30 |
| speaker_line | relay on + playing + amp_current_a ≤ 0.3 A (mains present) | playing with more current | 0 |
| overheating | cabinet_temp_c > 60 °C | ≤ 55 °C | 60 |
| clock_offset | abs(clock_offset_ms) > 100 ms | ≤ 80 ms | 60 |
| disk_low | disk_free_mb < 500 MB | ≥ 600 MB | 300 |
| led_unreachable | LED board controller does not answer | it answers | 60 |
| missed_broadcast | a `missed` event | the next proof of play (`play_finished`) | — |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.core.config import Settings


@dataclass(frozen=True)
class Sample:
    """What the engine knows about one station at one evaluation."""

    device_id: int
    now: datetime
    online: bool
    last_seen: datetime | None
    tele: dict[str, Any]  # the latest Telemetry fields (may be empty)


@dataclass(frozen=True)
class Verdict:
    bad: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class ThresholdRule:
    """bad when metric crosses `open_at`; good only once it is back past `clear_at`."""

    kind: str
    metric: str
    below: bool  # True: bad when the value is low (mains, disk); False: when high
    open_at: float
    clear_at: float
    for_s: float
    absolute: bool = False  # compare |value| (clock offset either way)

    def check(self, s: Sample, active: bool) -> Verdict | None:
        raw = s.tele.get(self.metric)
        if raw is None or isinstance(raw, bool) or raw != raw:  # missing or NaN: cannot tell
            return None
        value = abs(float(raw)) if self.absolute else float(raw)
        limit = self.clear_at if active else self.open_at  # hysteresis
        bad = value < limit if self.below else value > limit
        return Verdict(bad, {"metric": self.metric, "value": raw, "threshold": self.open_at})


@dataclass(frozen=True)
class SpeakerLineRule:
    """Audio is playing through a switched-on amplifier, yet it draws only idle current."""

    kind: str
    idle_a: float
    mains_min_v: float
    for_s: float

    def check(self, s: Sample, active: bool) -> Verdict | None:
        t = s.tele
        if not (t.get("playing") and t.get("relay_on")) or t.get("amp_current_a") is None:
            return None
        mains = t.get("mains_v")
        if mains is not None and mains < self.mains_min_v:
            return None  # no mains: that is the mains alarm, not the line's fault
        current = float(t["amp_current_a"])
        return Verdict(current <= self.idle_a, {"metric": "amp_current_a", "value": current,
                                                "threshold": self.idle_a})


@dataclass(frozen=True)
class FlagRule:
    """bad when a boolean metric is False (the LED controller does not answer)."""

    kind: str
    metric: str
    for_s: float

    def check(self, s: Sample, active: bool) -> Verdict | None:
        value = s.tele.get(self.metric)
        if value is None:
            return None
        return Verdict(not value, {"metric": self.metric, "value": value})


@dataclass(frozen=True)
class OfflineRule:
    """Not heard from for `after_s` (Last Will or silence); good when online and heard from."""

    kind: str
    after_s: float
    for_s: float = 0.0

    def check(self, s: Sample, active: bool) -> Verdict | None:
        if s.last_seen is None:
            return None  # never connected: being installed, not offline
        silent = (s.now - s.last_seen).total_seconds()
        if silent > self.after_s:
            return Verdict(True, {"last_seen": s.last_seen.isoformat(), "silent_s": round(silent)})
        if s.online:
            return Verdict(False, {})
        return None  # offline, but not for long enough yet


TelemetryRule = ThresholdRule | SpeakerLineRule | FlagRule
OFFLINE = "offline"
MISSED = "missed_broadcast"
KINDS = ("offline", "mains_loss", "speaker_line", "overheating", "clock_offset", "disk_low",
         "led_unreachable", "missed_broadcast")  # fmt: skip


def telemetry_rules(cfg: Settings) -> list[TelemetryRule]:
    """The default rule set, thresholds and durations from settings (COMMUNECAST_ALARM_*)."""
    clock = cfg.alarm_clock_offset_max_ms
    return [
        ThresholdRule("mains_loss", "mains_v", True, cfg.alarm_mains_min_v, cfg.alarm_mains_min_v + 15,
                      cfg.alarm_mains_for_s),
        SpeakerLineRule("speaker_line", cfg.alarm_idle_current_a, cfg.alarm_mains_min_v,
                        cfg.alarm_speaker_line_for_s),
        ThresholdRule("overheating", "cabinet_temp_c", False, cfg.alarm_cabinet_max_c,
                      cfg.alarm_cabinet_max_c - 5, cfg.alarm_overheat_for_s),
        ThresholdRule("clock_offset", "clock_offset_ms", False, clock, clock * 0.8, cfg.alarm_clock_for_s,
                      absolute=True),
        ThresholdRule("disk_low", "disk_free_mb", True, cfg.alarm_disk_min_mb, cfg.alarm_disk_min_mb * 1.2,
                      cfg.alarm_disk_for_s),
        FlagRule("led_unreachable", "led_reachable", cfg.alarm_led_for_s),
    ]  # fmt: skip


def offline_rule(cfg: Settings) -> OfflineRule:
    return OfflineRule(OFFLINE, cfg.alarm_offline_after_s)
