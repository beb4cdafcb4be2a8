"""Reporting to the province: is it getting our status and play logs? (docs/provincial.md)"""

from __future__ import annotations

from controller.schemas.common import Number, Out


class ProvincialError(Out):
    code: str
    message: str
    at: str | None = None
    at_local: str | None = None


class QueueDepth(Out):
    """What waits in the durable outbox, per kind, and since when."""

    status: int
    play_log: int
    total: int
    oldest_at: str | None = None


class Delivered(Out):
    status: int
    play_log: int


class ProvincialStatus(Out):
    enabled: bool
    base_url: str | None = None
    interval_s: Number
    this_replica_sends: bool
    retry_in_s: Number | None = None
    queue: QueueDepth
    healthy: bool
    last_success_at: str | None = None
    last_success_local: str | None = None
    last_attempt_at: str | None = None
    last_login_at: str | None = None
    logins: int
    delivered: Delivered
    last_error: ProvincialError | None = None
