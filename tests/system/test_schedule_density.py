"""Issue 16: "hourly or slower" holds for the rule dateutil runs, not its text.
`FREQ=HOURLY;FREQ=SECONDLY` and `FREQ=HOURLY;BYMINUTE=0..59;BYSECOND=0..59` (3,602 items
in 30 minutes) are refused with a Vietnamese 422 and nothing stored, through the API and
the service; a station's desired state stays under desired_state_max_bytes (refused on
save and approval, trimmed at publish); legitimate hourly and daily rules still work."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from controller import horizon_sources
from controller.core.errors import UserError
from controller.db.models import Area, Device, Media, User
from controller.db.models_schedules import Schedule
from controller.db.session import Database
from controller.services import desired_state, metrics, schedules
from controller.services.schedule_limits import Limits
from controller.services.targets import Targets
from protocol.signing import KeyPair, Signer
from testkit.api import Api
from testkit.harness import System
from tests.support.audio import tone

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
EVERY = ",".join(str(n) for n in range(60))
BYPASSES = {
    "FREQ=HOURLY;FREQ=SECONDLY": "schedule.duplicate_key",
    f"FREQ=HOURLY;BYMINUTE={EVERY};BYSECOND={EVERY}": "schedule.too_close",
    "FREQ=DAILY;BYHOUR=7;BYMINUTE=0,30": "schedule.too_close",
    "FREQ=SECONDLY": "schedule.too_frequent",
}


async def test_api_refuses_dense_rules_in_vietnamese_and_keeps_legitimate_ones(
    system: System, tmp_path: Path
) -> None:
    commune = system.communes[0]["id"]
    await system.api_json("POST", "/api/v1/devices", json={
        "name": "Cụm loa thôn Đông", "kind": "speaker", "commune_id": commune})  # fmt: skip
    sha = (await Api.of(system).upload(tone(tmp_path / "b.wav", seconds=1.0)))["sha256"]
    start = (datetime.now(TZ) + timedelta(days=1)).replace(hour=7, minute=0, second=0, microsecond=0)
    body = {"title": "Bản tin", "media": [sha], "dtstart": start.replace(tzinfo=None).isoformat(),
            "targets": {"communes": [commune]}}  # fmt: skip
    for rule, code in BYPASSES.items():
        r = await system.api("POST", "/api/v1/schedules", json=body | {"rrule": rule})
        assert r.status_code == 422, (rule, r.text)
        assert r.json()["code"] == code
        assert any(w in r.json()["detail"] for w in ("lặp lại", "ít nhất 1 giờ", "dày hơn mỗi giờ")), r.json()
    assert await system.api_json("GET", "/api/v1/schedules") == []
    for rule in ("FREQ=HOURLY;BYMINUTE=0;BYSECOND=0", "FREQ=DAILY;BYHOUR=7,17;BYMINUTE=0"):
        r = await system.api("POST", "/api/v1/schedules", json=body | {"rrule": rule})
        assert r.status_code == 201, r.text


@pytest.fixture
def seeded(database_url: str) -> Iterator[tuple[Database, User, str, int]]:
    db = Database(database_url)
    db.migrate()
    with db.session() as s:
        commune = Area(level="commune", name="Xã Hợp Hòa")
        admin = User(username="quantri", password_hash="x", role="admin")
        s.add_all([commune, admin])
        s.flush()
        dev = Device(uid="spk-d", name="Cụm loa D", kind="speaker", commune_id=commune.id, tags=[])
        sha = "a" * 64
        s.add_all(
            [
                dev,
                Media(
                    sha256=sha,
                    original_name="b.mp3",
                    content_type="audio/mpeg",
                    size=1000,
                    duration_s=30.0,
                    codec="mp3",
                    source_sha256=sha,
                ),
            ]
        )
        s.commit()
        s.expunge(admin)
        yield db, admin, sha, dev.id
    db.dispose()


def _req(sha: str, device_id: int, rule: str) -> schedules.ScheduleIn:
    start = (datetime.now(TZ) + timedelta(days=1)).replace(hour=7, minute=0, second=0, microsecond=0)
    return schedules.ScheduleIn(title="Bản tin", media=[sha], rrule=rule, dtstart=start.replace(tzinfo=None),
                                targets=Targets(devices=[device_id]))  # fmt: skip


def _count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Schedule)) or 0)


def test_service_refuses_bypasses_and_states_over_the_size_limit(
    seeded: tuple[Database, User, str, int],
) -> None:
    db, admin, sha, dev = seeded
    for rule, code in BYPASSES.items():
        with pytest.raises(UserError) as err, db.session() as s:
            schedules.save(s, _req(sha, dev, rule), admin)
        assert err.value.key == code
    assert _count(db) == 0
    small = Limits(max_per_day=48, desired_state_max_bytes=16 * 1024, horizon=timedelta(days=8))
    with pytest.raises(UserError) as err, db.session() as s:  # 192 hourly items: ~50 KiB signed
        schedules.save(s, _req(sha, dev, "FREQ=HOURLY"), admin, limits=small)
    assert err.value.key == "schedule.desired_state_too_big" and err.value.status == 422
    assert _count(db) == 0
    few = Limits(max_per_day=2, desired_state_max_bytes=512 * 1024, horizon=timedelta(days=8))
    with pytest.raises(UserError) as err, db.session() as s:
        schedules.save(s, _req(sha, dev, "FREQ=DAILY;BYHOUR=6,12,18"), admin, limits=few)
    assert err.value.key == "schedule.too_many_per_day"
    with db.session() as s:
        saved = schedules.save(s, _req(sha, dev, "FREQ=DAILY"), admin, limits=small)
        s.commit()
    assert saved.approved and _count(db) == 1


def test_publish_trims_a_state_over_the_limit_from_its_far_end(
    seeded: tuple[Database, User, str, int],
) -> None:
    """A dense rule stored before the checks existed: the state published still fits."""
    db, admin, sha, dev = seeded
    with db.session() as s:
        s.add(Schedule(title="Cũ", media=[sha], duration_s=30.0, rrule="FREQ=HOURLY;FREQ=MINUTELY",
                       dtstart=(datetime.now(TZ) - timedelta(hours=1)).replace(tzinfo=None).isoformat(),
                       timezone="Asia/Ho_Chi_Minh", targets={"devices": [dev]}, priority="normal",
                       status="active", created_by=admin.id))  # fmt: skip
        s.commit()
    before = metrics.DESIRED_STATE_TRIMMED._value.get()
    with db.session() as s:
        (out,) = desired_state.build(s, [dev], Signer(KeyPair.generate()), now=datetime.now(UTC),
                                     horizon=timedelta(days=8), sources=horizon_sources.standard(),
                                     max_bytes=64 * 1024)  # fmt: skip
    assert len(out.payload) <= 64 * 1024
    env = json.loads(base64.urlsafe_b64decode(json.loads(out.payload)["payload"] + "=="))
    starts = [i["start_at"] for i in env["body"]["schedule"]]
    assert 10 < len(starts) < 2000 and starts == sorted(starts)
    assert metrics.DESIRED_STATE_TRIMMED._value.get() == before + 1
