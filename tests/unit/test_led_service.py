"""The controller side of LED content on SQLite and PostgreSQL: the emergency mirror hook and
what each board's desired state carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.db.models import Area, Device
from controller.db.session import Database
from controller.horizon_sources import standard
from controller.services import led
from controller.services.desired_state import build
from device_agents.led.content import choose
from protocol.envelope import Envelope
from protocol.messages import DesiredState, Priority
from protocol.signing import KeyPair, Signer

NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


def _setup(db: Database) -> tuple[int, int, int, int]:
    with db.session() as s:
        province = Area(level="province", name="Tỉnh Phú Thọ")
        s.add(province)
        s.flush()
        flooded = Area(level="commune", name="Xã Hợp Hòa", parent_id=province.id)
        dry = Area(level="commune", name="Xã Kim Long", parent_id=province.id)
        s.add_all([flooded, dry])
        s.flush()
        board = Device(uid="led-a1", name="Bảng cổng xã", kind="led", commune_id=flooded.id, reported={})
        far = Device(uid="led-b1", name="Bảng chợ", kind="led", commune_id=dry.id, reported={})
        horn = Device(uid="spk-a1", name="Cụm loa 1", kind="speaker", commune_id=flooded.id, reported={})
        s.add_all([board, far, horn])
        s.commit()
        return flooded.id, board.id, far.id, horn.id


def test_emergency_text_is_mirrored_onto_the_boards_of_the_area(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    try:
        commune, board, far, horn = _setup(db)
        with db.session() as s:
            req = led.LedMessageCreate.model_validate({
                "text": "Lịch tiêm chủng ngày 05/12", "targets": {"all": True}, "mode": "scroll"})
            row, targets, _ = led.create(s, req, None, now=NOW)
            assert row is not None and sorted(targets) == [board, far]  # never the speaker
            dirty = led.mirror_emergency_text(s, {"communes": [commune]}, "Lũ quét: sơ tán ngay",
                                              NOW + timedelta(hours=2), now=NOW)
            s.commit()
            assert dirty == [board]
            assert led.mirror_emergency_text(s, {"devices": [horn]}, "x", None) == []  # no boards: no-op
        with db.session() as s:
            content = led.content_for(s, [board, far, horn], NOW + timedelta(minutes=1))
            assert set(content) == {board, far}
            shown = choose(content[board], NOW + timedelta(minutes=1))
            assert shown is not None and shown.text == "Lũ quét: sơ tán ngay"
            assert shown.priority == Priority.EMERGENCY.value and shown.color == "red"
            assert choose(content[far], NOW).text == "Lịch tiêm chủng ngày 05/12"  # type: ignore[union-attr]
            after = choose(content[board], NOW + timedelta(hours=3))  # the emergency window ended
            assert after is not None and after.text == "Lịch tiêm chủng ngày 05/12"
            # The signed desired state carries it for boards only.
            out = {o.device_id: o for o in build(s, [board, horn], Signer(KeyPair.generate()), now=NOW,
                                                 horizon=timedelta(days=1), sources=standard())}
            s.rollback()
        def body(o: object) -> DesiredState:
            import base64
            import json

            raw = json.loads(o.payload)  # type: ignore[attr-defined]
            env = Envelope.model_validate_json(base64.urlsafe_b64decode(raw["payload"] + "=="))
            return DesiredState.model_validate(env.body)

        assert body(out[horn]).led is None
        board_state = body(out[board])
        assert board_state.led is not None
        assert [m.text for m in board_state.led.messages] == ["Lịch tiêm chủng ngày 05/12",
                                                              "Lũ quét: sơ tán ngay"]
        assert board_state.led.brightness  # night dimming travels with the content
    finally:
        db.dispose()
