"""LED boards: messages, their dry run, a board's health."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from controller.db.models_led import LedMessageRow
from controller.schemas.common import Number, Out
from controller.schemas.targets import Targets
from protocol.messages import Priority


class LedMessageOut(Out):
    id: int
    text: str
    mode: str
    speed: int
    color: str
    duration_s: Number
    priority: str
    start_at: str | None = None
    end_at: str | None = None
    targets: dict[str, Any]
    source: str
    status: str
    rrule: str | None = None
    dtstart: str | None = None
    until: str | None = None
    exdates: list[str]
    show_minutes: int | None = None
    created_at: str

    @classmethod
    def body(cls, m: LedMessageRow) -> dict[str, Any]:
        """The JSON body, as a dict (POST adds `boards` and what each board will show)."""
        return {
            "id": m.id, "text": m.text, "mode": m.mode, "speed": m.speed, "color": m.color,
            "duration_s": m.duration_s, "priority": m.priority,
            "start_at": m.start_at.isoformat() if m.start_at else None,
            "end_at": m.end_at.isoformat() if m.end_at else None,
            "targets": m.targets, "source": m.source, "status": m.status,
            "rrule": m.rrule, "dtstart": m.dtstart, "until": m.until, "exdates": m.exdates or [],
            "show_minutes": m.show_s // 60 if m.show_s else None,
            "created_at": m.created_at.isoformat(),
        }  # fmt: skip


class Window(Out):
    start_at: str
    end_at: str


class LedMessageCreated(Out):
    """POST /led-messages: the stored message with `boards` (201), or with `dry_run` only what
    each board would show (200, `id` null). Either way `board_will_show` and `warnings`."""

    id: int | None
    dry_run: bool | None = None
    text: str | None = None
    mode: str | None = None
    speed: int | None = None
    color: str | None = None
    duration_s: Number | None = None
    priority: str | None = None
    start_at: str | None = None
    end_at: str | None = None
    targets: dict[str, Any] | None = None
    source: str | None = None
    status: str | None = None
    rrule: str | None = None
    dtstart: str | None = None
    until: str | None = None
    exdates: list[str] | None = None
    show_minutes: int | None = None
    created_at: str | None = None
    boards: int | None = None
    board_will_show: list[dict[str, Any]]
    warnings: list[str]
    next_windows: list[Window] | None = None


class LedHealth(Out):
    """What a board reported last: reachability, what it shows, its temperature. The values
    the station reports are passed on as it sent them (typed loosely: its data, not ours)."""

    device_id: int
    online: bool | None = None
    last_seen: str | None = None
    protocol: Any = None
    controller_reachable: Any = None
    last_ack_at: str | None = None
    temperature_c: Any = None
    showing: Any = None
    original: Any = None
    item_ids: list[Any]
    brightness: Any = None


# -- requests ------------------------------------------------------------------------------------------
class LedMessageCreate(BaseModel):
    """POST /api/v1/led-messages; `dry_run` only says what each board will show."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000)
    targets: Targets
    mode: str = Field(default="hold", pattern=r"^(hold|scroll|flash|rotate)$")
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    priority: Priority = Priority.NORMAL
    speed: int = Field(default=3, ge=1, le=5)
    color: str = Field(default="amber", pattern=r"^(red|green|amber|yellow|white|orange)$")
    duration_s: int = Field(default=10, ge=1, le=3600)
    # Recurring text, with the same RFC 5545 rules as audio schedules (docs/led.md): from
    # each occurrence of `rrule` (local wall time from `dtstart`) the text stays up `show_minutes`.
    rrule: str | None = Field(default=None, max_length=500)
    dtstart: str | None = Field(default=None, max_length=32)
    until: str | None = Field(default=None, max_length=32)
    exdates: list[str] = Field(default_factory=list, max_length=366)
    show_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    dry_run: bool = False  # only say what each board will show; store and send nothing
