"""How dense a schedule may be, checked on the parsed rule and on what it adds to stations.

The text of a rule is not what runs: dateutil keeps the last of repeated keys
(`FREQ=HOURLY;FREQ=SECONDLY` is secondly) and BYMINUTE/BYSECOND multiply an hourly rule
(`FREQ=HOURLY;BYMINUTE=0,...,59` is every minute). So a save or approval checks the rule
dateutil built and its expanded occurrences: no repeated key, nothing faster than hourly,
no two plays closer than an hour, at most `schedule_max_per_day` a day, and every target
station's desired state within `desired_state_max_bytes`. Publishing trims as a last line
of defence (desired_state.build) for rules stored before these checks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from dateutil.rrule import HOURLY, rrule
from sqlalchemy.orm import Session

from controller.core.config import Settings
from controller.core.errors import UserError
from controller.db.models import Device
from controller.services import schedule_horizon
from protocol.messages import ScheduleItem

MIN_SPACING = timedelta(hours=1)
# Occurrences looked at from DTSTART: every BY* combination of a period shows up in them.
SAMPLED = 500
# Envelope, signature and base64 around the items (desired_state._sealed): 4 bytes per 3, plus a head.
_HEAD_BYTES = 1024


@dataclass(frozen=True)
class Limits:
    max_per_day: int
    desired_state_max_bytes: int
    horizon: timedelta

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.schedule_max_per_day, settings.desired_state_max_bytes,
                   timedelta(days=settings.horizon_days))  # fmt: skip

    @classmethod
    def defaults(cls) -> Limits:
        """The settings' defaults, without reading the environment (service calls in tests)."""
        return cls.of(Settings.model_construct())


def check_rule_text(text: str) -> None:
    """A key given twice is refused: dateutil would silently keep the last one."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    seen: set[str] = set()
    for part in body.split(";"):
        key = part.split("=", 1)[0].strip().upper()
        if key in seen:
            raise UserError(422, "schedule.duplicate_key", rule=text, part=key)
        seen.add(key)


def check_rule(rule: rrule, text: str, limits: Limits) -> None:
    """The parsed rule: its frequency, then its first SAMPLED occurrences' spacing and per day."""
    if rule._freq > HOURLY:  # dateutil keeps its parts private; MINUTELY and SECONDLY are above
        raise UserError(422, "schedule.too_frequent", rule=text)
    previous: datetime | None = None
    per_day: Counter[object] = Counter()
    for at in islice(rule, SAMPLED):
        if previous is not None and at - previous < MIN_SPACING:
            minutes = round((at - previous).total_seconds() / 60, 1)
            raise UserError(422, "schedule.too_close", rule=text, minutes=minutes)
        per_day[at.date()] += 1
        if per_day[at.date()] > limits.max_per_day:
            raise UserError(422, "schedule.too_many_per_day", rule=text, limit=limits.max_per_day)
        previous = at


def estimated_bytes(items: list[ScheduleItem], sizes: dict[str, int]) -> int:
    """The signed desired state's size for these items (item JSON cached in `sizes` by id)."""
    raw = _HEAD_BYTES
    for item in items:
        size = sizes.get(item.item_id)
        if size is None:
            size = sizes[item.item_id] = len(item.model_dump_json()) + 1
        raw += size
    return raw * 4 // 3


def check_desired_size(session: Session, devices: list[Device], limits: Limits, *, now: datetime) -> None:
    """Every station's desired state with the active schedules (the one saved included) fits."""
    if not devices:
        return
    items = schedule_horizon.horizon_items(session, devices, now=now, horizon=limits.horizon)
    sizes: dict[str, int] = {}
    for device in devices:
        size = estimated_bytes(items.get(device.id, []), sizes)
        if size > limits.desired_state_max_bytes:
            raise UserError(422, "schedule.desired_state_too_big", station=device.name,
                            kib=size // 1024, limit_kib=limits.desired_state_max_bytes // 1024)  # fmt: skip
