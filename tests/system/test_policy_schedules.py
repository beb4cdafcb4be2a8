"""Issue 3 acceptance: broadcast policy per commune, overrides, approval and the audit trail.

A 03:15 schedule in a commune whose policy is 05:00–21:00 is refused with that rule; a
commune operator may not override; an admin's override with a reason is accepted and
audited; emergency is exempt and says so; a commune operator's schedule waits as a
draft until someone with approval rights approves it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from communecast.stations import ApiClient
from controller.core.security import hash_password
from controller.db.models import User
from testkit.api import Api
from testkit.harness import System
from tests.support.audio import tone

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def _add_user(system: System, username: str, role: str, area_id: int) -> str:
    password = f"pw-{username}-123"
    engine = create_engine(system.database_url)
    with Session(engine) as s:
        s.add(User(username=username, password_hash=hash_password(password), role=role, area_id=area_id))
        s.commit()
    engine.dispose()
    return password


async def test_policy_refuses_0315_and_audits_override(system: System, tmp_path: Path) -> None:
    commune = system.communes[0]["id"]
    await system.api_json("POST", "/api/v1/devices", json={
        "name": "Cụm loa thôn Đông", "kind": "speaker", "commune_id": commune})  # fmt: skip
    sha = (await Api.of(system).upload(tone(tmp_path / "b.wav", seconds=1.0)))["sha256"]
    policy = await system.api_json("PUT", f"/api/v1/communes/{commune}/policy", json={
        "allowed_hours": [["05:00", "21:00"]], "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "max_minutes_per_session": 15, "max_minutes_per_day": 60})  # fmt: skip
    assert policy["allowed_hours"] == [["05:00", "21:00"]] and policy["days"] == [1, 2, 3, 4, 5, 6, 7]

    tomorrow = (datetime.now(TZ) + timedelta(days=1)).date()
    body = {"title": "Thông báo lịch cắt điện", "media": [sha], "rrule": "FREQ=DAILY",
            "dtstart": f"{tomorrow.isoformat()}T03:15:00", "targets": {"communes": [commune]},
            "priority": "normal"}
    r = await system.api("POST", "/api/v1/schedules", json=body)
    assert r.status_code == 422, r.text
    refused = r.json()
    assert refused["code"] == "policy.outside_hours"
    assert refused["rule"]["rule"] == "allowed_hours"
    assert refused["rule"]["allowed_hours"] == [["05:00", "21:00"]]
    assert "05:00–21:00" in refused["detail"] and "03:15" in refused["detail"]
    assert "khung giờ" in refused["detail"]
    r = await system.api("POST", "/api/v1/schedules", json=body, headers={"Accept-Language": "en"})
    assert "allows broadcasts only within 05:00–21:00" in r.json()["detail"]
    # A one-off broadcast at 03:15 is refused the same way.
    at = datetime.combine(tomorrow, datetime.min.time()).replace(hour=3, minute=15, tzinfo=TZ)
    r = await system.api("POST", "/api/v1/broadcasts", json={
        "title": "Bản tin", "media": [sha], "targets": {"communes": [commune]}, "start_at": at.isoformat()})
    assert r.status_code == 422 and r.json()["rule"]["rule"] == "allowed_hours"

    # A commune operator may not override the policy, even with a reason.
    pw = _add_user(system, "canbo_xa", "commune", commune)
    operator = await ApiClient.login(system.base_url, "canbo_xa", pw)
    headers = {"Authorization": f"Bearer {operator.token}"}
    r = await system.api("POST", "/api/v1/schedules", auth=False, headers=headers,
                         json=body | {"override_reason": "Lịch đặc biệt"})
    assert r.status_code == 403 and r.json()["code"] == "policy.override_forbidden"

    # The admin may, with a reason; it is accepted and in the audit trail.
    reason = "Thông báo khẩn về lịch cắt điện theo yêu cầu của UBND huyện"
    created = await system.api_json("POST", "/api/v1/schedules", json=body | {"override_reason": reason})
    assert created["policy"]["status"] == "override" and created["policy"]["rule"]["rule"] == "allowed_hours"
    assert created["approved"] is True
    trail = await system.api_json("GET", "/api/v1/reports/audit",
                                  params={"object_type": "schedule", "object_id": str(created["id"])})
    actions = [e["action"] for e in trail]
    assert actions == ["schedule.create", "policy.override", "schedule.approve"]
    override = trail[1]
    assert override["detail"]["reason"] == reason and override["username"] == "admin"
    assert override["detail"]["rule"]["rule"] == "allowed_hours"

    # Emergency is exempt, and the response says so.
    emergency = await system.api_json("POST", "/api/v1/schedules", json=body | {
        "priority": "emergency", "rrule": "FREQ=HOURLY;INTERVAL=2;BYMINUTE=0;BYSECOND=0"})
    assert emergency["policy"] == {"status": "exempt", "reason": "emergency"}

    # Too long a session is refused with that rule.
    r = await system.api("POST", "/api/v1/schedules", json=body | {
        "dtstart": f"{tomorrow.isoformat()}T06:00:00", "media": [sha] * 50, "rrule": "FREQ=DAILY;COUNT=1"})
    assert r.status_code == 201  # 50 s: within 15 minutes

    # The operator's own in-policy schedule is a draft until an approver approves it.
    mine = await system.api("POST", "/api/v1/schedules", auth=False, headers=headers, json=body | {
        "dtstart": f"{tomorrow.isoformat()}T17:00:00", "title": "Bản tin chiều"})
    assert mine.status_code == 201, mine.text
    draft = mine.json()
    assert draft["status"] == "draft" and draft["approved"] is False
    r = await system.api("POST", f"/api/v1/schedules/{draft['id']}/approve", auth=False, headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "approval.forbidden"
    apw = _add_user(system, "duyet_huyen", "approver", system.communes[0]["parent_id"])
    approver = await ApiClient.login(system.base_url, "duyet_huyen", apw)
    approved = await system.api("POST", f"/api/v1/schedules/{draft['id']}/approve", auth=False,
                                headers={"Authorization": f"Bearer {approver.token}"})
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    trail = await system.api_json("GET", "/api/v1/reports/audit",
                                  params={"object_type": "schedule", "object_id": str(draft["id"])})
    assert [(e["action"], e["username"]) for e in trail] == [
        ("schedule.create", "canbo_xa"), ("schedule.approve", "duyet_huyen")]
