"""Streamed broadcasts in the database, on SQLite and PostgreSQL: a relay and a live session
become signed stream items in their stations' desired state, the allow-list holds, and an
ended or cancelled stream leaves the stations' schedule as docs/live.md says."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.errors import UserError
from controller.db.models import Area, Broadcast, Device, User
from controller.db.session import Database
from controller.horizon_sources import standard
from controller.services import live, relay
from controller.services.desired_state import build
from controller.services.targets import Targets
from protocol.envelope import Envelope
from protocol.messages import DesiredState, Priority
from protocol.signing import KeyPair, Signer

NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
SOURCE = "http://radio.example/vov1.mp3"


def _schedule(db: Database, signer: Signer, device_id: int, now: datetime) -> DesiredState:
    with db.session() as s:
        (out,) = build(s, [device_id], signer, now=now, horizon=timedelta(days=8), sources=standard())
    raw = json.loads(out.payload)
    return DesiredState.model_validate(Envelope.model_validate_json(
        base64.urlsafe_b64decode(raw["payload"] + "==")).body)  # fmt: skip


def test_relay_and_live_items_in_desired_state(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    signer = Signer(KeyPair.generate())
    try:
        with db.session() as s:
            commune = Area(level="commune", name="Xã Hợp Hòa")
            s.add(commune)
            s.flush()
            horn = Device(uid="spk-a1", name="Cụm loa 1", kind="speaker", commune_id=commune.id, reported={})
            s.add(horn)
            s.flush()
            admin = s.query(User).filter_by(username="admin").one_or_none() or User(
                username="boss", password_hash="x", role="admin")  # fmt: skip
            s.add(admin)
            s.commit()
            horn_id, admin_id = horn.id, admin.id
        with db.session() as s:
            user = s.get(User, admin_id)
            assert user is not None
            base = {"source_url": SOURCE, "targets": {"all": True}, "format": "mp3",
                    "end_at": (NOW + timedelta(hours=1)).isoformat()}  # fmt: skip
            with pytest.raises(UserError) as refused:
                relay.create(s, relay.RelayCreate.model_validate(base | {"source_url": SOURCE + ".evil"}),
                             user, allowed=[SOURCE], now=NOW)  # fmt: skip
            assert refused.value.key == "relay.source_not_allowed"
            with pytest.raises(UserError):  # a relay may not outrank bulletins
                relay.create(s, relay.RelayCreate.model_validate(base | {"priority": "normal"}), user,
                             allowed=[SOURCE], now=NOW)  # fmt: skip
            rl, ids = relay.create(s, relay.RelayCreate.model_validate(base), user, allowed=[SOURCE], now=NOW)
            assert ids == [horn_id]
            lv, _ = live.create_live(s, live.LiveCreate(targets=Targets(all=True)), user, max_minutes=30,
                                     now=NOW)  # fmt: skip
            s.commit()
            relay_id, live_id, live_bc = rl.id, lv.id, lv.broadcast_id

        state = _schedule(db, signer, horn_id, NOW)
        items = {i.stream.kind: i for i in state.schedule if i.stream}  # type: ignore[union-attr]
        assert set(items) == {"relay", "live"}
        assert items["relay"].stream.url == SOURCE and items["relay"].priority is Priority.RELAY  # type: ignore[union-attr]
        assert items["relay"].end_at == NOW + timedelta(hours=1)
        live_item = items["live"]
        assert live_item.priority is Priority.EMERGENCY and live_item.media == []
        assert live_item.stream.url == f"/api/v1/live/{live_id}/stream" and live_item.stream.token  # type: ignore[union-attr]
        assert live_item.duration_s == 30 * 60

        with db.session() as s:  # ending a live session keeps it (with its new end) for the stations
            boss = s.get(User, admin_id)
            ended = live.end_live(s, live_id, boss, now=NOW + timedelta(minutes=2))
            assert ended.status == "ended" and s.get(Broadcast, live_bc).status == live.STREAM_STATUS  # type: ignore[union-attr]
            relay.cancel(s, relay_id, boss, now=NOW + timedelta(minutes=2))
            s.commit()
        state = _schedule(db, signer, horn_id, NOW + timedelta(minutes=3))
        assert [i.stream.kind for i in state.schedule if i.stream] == ["live"]  # type: ignore[union-attr]
        state = _schedule(db, signer, horn_id, NOW + timedelta(minutes=30))
        assert state.schedule == []  # long gone
    finally:
        db.dispose()
