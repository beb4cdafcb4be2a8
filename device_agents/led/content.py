"""What an LED board should show at a moment: validity windows, priority, rotation, dimming.

Pure functions of the desired LED content and the time, so the rules are tested without
a board or a clock.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from device_agents.led.driver import BoardContent
from protocol.messages import LedContent, LedMessage


def choose(content: LedContent, now: datetime) -> BoardContent | None:
    """What the board should show at `now`: active messages of the highest priority, rotating."""
    active = [m for m in content.messages
              if (m.start_at is None or m.start_at <= now) and (m.end_at is None or now < m.end_at)]
    if not active:
        return None
    top = max(m.priority.rank for m in active)
    pick: list[LedMessage] = [m for m in active if m.priority.rank == top]
    if len(pick) > 1:
        cycle = sum(m.duration_s for m in pick)
        t = now.timestamp() % cycle
        for m in pick:
            if t < m.duration_s:
                pick = [m]
                break
            t -= m.duration_s
    m = pick[0]
    return BoardContent(m.text, m.mode, m.color, m.speed, m.priority.value, (m.item_id,))


def brightness_at(content: LedContent, now: datetime) -> int | None:
    if not content.brightness:
        return None
    local = now.astimezone(ZoneInfo(content.timezone)).strftime("%H:%M")
    steps = sorted(content.brightness, key=lambda s: s.at)
    current = steps[-1].percent  # before the first step of the day, yesterday's last one holds
    for s in steps:
        if s.at <= local:
            current = s.percent
    return current
