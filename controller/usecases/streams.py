"""Live voice and relayed streams: start, read, end or cancel, list (docs/live.md).

The caller's right to send is checked here; the area (every target station inside it,
or being the stream's creator or covering all its stations to manage it) is checked by
services/live.py itself (`create_stream`, `managed_stream`). Writes queue their stations'
dispatch in the caller's transaction; the caller commits.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from controller.core.permissions import Action
from controller.db.models import User
from controller.db.models_live import LiveStream
from controller.services import live, relay
from controller.usecases.access import require


def start_live(
    session: Session, user: User, req: live.LiveCreate, *, max_minutes: int
) -> tuple[LiveStream, list[int]]:
    require(user, Action.BROADCAST_SEND)
    return live.create_live(session, req, user, max_minutes=max_minutes)


def get_live(session: Session, user: User, stream_id: int) -> LiveStream:
    require(user, Action.BROADCAST_SEND)
    return live.managed_stream(session, stream_id, "live", user)


def end_live(session: Session, user: User, stream_id: int) -> LiveStream:
    require(user, Action.BROADCAST_SEND)
    return live.end_live(session, stream_id, user)


def start_relay(
    session: Session, user: User, req: relay.RelayCreate, *, allowed: list[str]
) -> tuple[LiveStream, list[int]]:
    require(user, Action.BROADCAST_SEND)
    return relay.create(session, req, user, allowed=allowed)


def cancel_relay(session: Session, user: User, relay_id: int) -> list[int]:
    require(user, Action.BROADCAST_SEND)
    return relay.cancel(session, relay_id, user)


def relays(session: Session, user: User, limit: int) -> list[LiveStream]:
    """Those reaching the caller's area (relay.list_relays scopes them)."""
    return relay.list_relays(session, user, min(limit, 1000))
