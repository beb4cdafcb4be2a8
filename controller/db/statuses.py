"""The closed vocabularies stored in status-like columns, one `StrEnum` each.

Why StrEnum: a member *is* its string, so the VARCHAR values in SQLite and PostgreSQL,
the JSON the API returns and the comparisons in templates stay byte-identical to the plain
strings written before (no migration), while code names a status it can not misspell and a
reader finds every value of a column in one place. The columns stay `String(n)` (no CHECK
constraint, no native enum type): adding a value is an edit here, not a migration.

A member of each enum is what the code may write; tests/unit/test_vocabulary.py checks the
models' defaults and that every value a flow leaves in the database is a member.
"""

from __future__ import annotations

from enum import StrEnum


class BroadcastStatus(StrEnum):
    """`broadcasts.status`."""

    SCHEDULED = "scheduled"  # on the air at start_at (approved, or needs no approval)
    DRAFT = "draft"  # waits for an approver (docs/schedules.md); not sent to stations
    CANCELLED = "cancelled"
    STREAM = "stream"  # the row of a live voice or radio relay (controller/services/live.py)


# Broadcasts that will air or may air once approved: what policy and conflict checks count.
PLANNED_BROADCAST = (BroadcastStatus.SCHEDULED, BroadcastStatus.DRAFT)


class DeliveryState(StrEnum):
    """`deliveries.state`: has the station accepted the signed message naming this item?"""

    PENDING = "pending"
    ACKED = "acked"
    REJECTED = "rejected"


class PlayStatus(StrEnum):
    """`play_log.status`: proof of play, from the station's events (services/ingest.py)."""

    PLAYING = "playing"
    PLAYED = "played"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    MISSED = "missed"


# Plays that put sound on the air (their minutes count in reports).
AIRED_PLAY = (PlayStatus.PLAYED, PlayStatus.INTERRUPTED)
# A play that reached its end one way or another (what the province is told about).
FINAL_PLAY = (PlayStatus.PLAYED, PlayStatus.INTERRUPTED, PlayStatus.FAILED, PlayStatus.MISSED)


class ScheduleStatus(StrEnum):
    """`schedules.status` (and the schedules `led_messages` rows recur by)."""

    DRAFT = "draft"  # saved, waits for an approver
    ACTIVE = "active"  # approved: its occurrences are in the stations' horizons
    DELETED = "deleted"  # kept for the play log and the audit trail


# Schedules that will air or may air once approved.
PLANNED_SCHEDULE = (ScheduleStatus.ACTIVE, ScheduleStatus.DRAFT)


class EmergencyStatus(StrEnum):
    """`emergency_broadcasts.status`."""

    ACTIVE = "active"
    CANCELLED = "cancelled"


class LedMessageStatus(StrEnum):
    """`led_messages.status`."""

    ACTIVE = "active"
    CANCELLED = "cancelled"


class LedSource(StrEnum):
    """`led_messages.source`: who put the text on the boards."""

    OPERATOR = "operator"
    EMERGENCY = "emergency"  # mirrored from an emergency broadcast


class LiveStatus(StrEnum):
    """`live_streams.status`."""

    DRAFT = "draft"  # a relay waiting for an approver (its broadcast row is a draft too)
    ACTIVE = "active"
    ENDED = "ended"


class StreamKind(StrEnum):
    """`live_streams.kind`."""

    LIVE = "live"  # an operator's voice from the browser
    RELAY = "relay"  # a radio stream the controller relays


class StreamFallback(StrEnum):
    """`live_streams.fallback`: what a station plays during dead air."""

    SILENCE = "silence"
    FILLER = "filler"


class AlarmState(StrEnum):
    """`alarms.state`: open -> acknowledged -> resolved (or open -> resolved)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# Not resolved yet: what the dashboard and the "active" filter show.
ACTIVE_ALARM = (AlarmState.OPEN, AlarmState.ACKNOWLEDGED)


class DiagnosticState(StrEnum):
    """`diagnostic_commands.state` (the API also shows "expired" for a pending one past its
    validity; that word is computed, never stored)."""

    PENDING = "pending"
    DONE = "done"
    ERROR = "error"
    REJECTED = "rejected"


class RolloutState(StrEnum):
    """`update_rollouts.state`: sent -> applied | rolled_back | refused; failed if never sent."""

    SENT = "sent"
    APPLIED = "applied"
    ROLLED_BACK = "rolled_back"
    REFUSED = "refused"
    FAILED = "failed"


class OutboxKind(StrEnum):
    """`provincial_outbox.kind`: which report a queued record belongs to."""

    STATUS = "status"
    PLAY_LOG = "play_log"


class OperatingState(StrEnum):
    """`operating_state` of a station in the status records sent to the province (the
    provincial outbox payload, services/provincial/outbox.py): wire vocabulary, no column."""

    OFFLINE = "offline"
    PLAYING = "playing"
    IDLE = "idle"


class CapOutcome(StrEnum):
    """`cap_alerts.outcome`: what the controller did with a CAP alert (docs/cap.md)."""

    RECEIVED = "received"  # stored, not yet decided (a crash in between leaves this)
    AIRED = "aired"
    DRAFT = "draft"
    RECORDED_ONLY = "recorded_only"
    NOT_FOR_US = "not_for_us"
    EXPIRED = "expired"
    NOT_PUBLIC = "not_public"
    CANCELLED = "cancelled"
    NO_AUDIO = "no_audio"
    NO_INFO = "no_info"  # no <info> block, or no priority could be read from it
    UNSUPPORTED_LANGUAGE = "unsupported_language"  # no Vietnamese or English <info>


class DeviceKind(StrEnum):
    """`devices.kind`."""

    SPEAKER = "speaker"
    LED = "led"


class AreaLevel(StrEnum):
    """`areas.level`: Vietnam's two-tier local government (since 1 July 2025, docs/areas.md):
    province > commune > village, plus groups of communes (a former district, a coastal belt)."""

    PROVINCE = "province"
    GROUP = "group"
    COMMUNE = "commune"
    VILLAGE = "village"


class CommuneKind(StrEnum):
    """`areas.kind` of a commune-level unit: xã, phường or đặc khu (empty for other levels)."""

    XA = "xa"
    PHUONG = "phuong"
    DAC_KHU = "dac_khu"


# Every (model attribute, enum) pair: the test checks defaults and stored values against it.
class BackupStatus(StrEnum):
    """`backup_runs.status`: running -> ok | failed (controller/services/backup/nightly.py)."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


class BackupTrigger(StrEnum):
    """`backup_runs.trigger`: the nightly service or `communecast backup`."""

    NIGHTLY = "nightly"
    MANUAL = "manual"


COLUMNS: tuple[tuple[str, str, type[StrEnum]], ...] = (
    ("broadcasts", "status", BroadcastStatus),
    ("deliveries", "state", DeliveryState),
    ("play_log", "status", PlayStatus),
    ("schedules", "status", ScheduleStatus),
    ("emergency_broadcasts", "status", EmergencyStatus),
    ("led_messages", "status", LedMessageStatus),
    ("led_messages", "source", LedSource),
    ("live_streams", "status", LiveStatus),
    ("live_streams", "kind", StreamKind),
    ("live_streams", "fallback", StreamFallback),
    ("alarms", "state", AlarmState),
    ("diagnostic_commands", "state", DiagnosticState),
    ("update_rollouts", "state", RolloutState),
    ("provincial_outbox", "kind", OutboxKind),
    ("cap_alerts", "outcome", CapOutcome),
    ("devices", "kind", DeviceKind),
    ("areas", "level", AreaLevel),
    ("backup_runs", "status", BackupStatus),
    ("backup_runs", "trigger", BackupTrigger),
)
