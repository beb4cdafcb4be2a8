"""How an emergency's targets become the fewest topics (SQLite and PostgreSQL): communes go to
their commune topic, a group of communes (docs/areas.md) to one commune topic per member (the
topics every station already listens on), single stations and tags to their own command topic
unless a commune topic already covers them; LED boards and retired stations are never counted."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy.orm import Session

from controller.core.config import Settings
from controller.core.errors import UserError
from controller.db.models import Area, AreaGroupMember, Broadcast, Delivery, Device, Media, PlayLog, User
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.session import Database
from controller.schemas.broadcasts import BroadcastCreate
from controller.services.emergency import check_rights, choose_lead, fresh_media, inline_payloads, plan
from controller.services.media import MediaStore
from controller.services.targets import Targets
from protocol.limits import INLINE_MEDIA_MAX_BYTES


def _province(s: Session) -> tuple[Area, ...]:
    """A province, two groups of communes (the old districts) and four communes: a, b in the
    first group, c, e in the second."""
    province = Area(level="province", name="Tỉnh Phú Thọ", code="25")
    s.add(province)
    s.flush()
    d1 = Area(level="group", name="Khu vực Tam Dương (huyện cũ)", parent_id=province.id)
    d2 = Area(level="group", name="Khu vực Lập Thạch (huyện cũ)", parent_id=province.id)
    s.add_all([d1, d2])
    s.flush()
    a = Area(level="commune", name="Xã Tam Dương", code="8869", parent_id=province.id)
    b = Area(level="commune", name="Xã Tam Dương Bắc", code="8872", parent_id=province.id)
    c = Area(level="commune", name="Xã Tử Du", parent_id=province.id)
    e = Area(level="commune", name="Xã Bàn Giản", parent_id=province.id)
    s.add_all([a, b, c, e])
    s.flush()
    s.add_all([AreaGroupMember(group_id=d1.id, commune_id=a.id),
               AreaGroupMember(group_id=d1.id, commune_id=b.id),
               AreaGroupMember(group_id=d2.id, commune_id=c.id),
               AreaGroupMember(group_id=d2.id, commune_id=e.id)])
    return province, d1, d2, a, b, c, e


def test_targets_map_to_the_fewest_group_topics(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    try:
        with db.session() as s:
            _, d1, d2, a, b, c, e = _province(s)
            devs = {
                "a1": Device(uid="a1", name="a1", kind="speaker", commune_id=a.id, tags=[], reported={}),
                "b1": Device(uid="b1", name="b1", kind="speaker", commune_id=b.id, tags=[], reported={}),
                "c1": Device(uid="c1", name="c1", kind="speaker", commune_id=c.id, tags=["chợ"], reported={}),
                "e1": Device(uid="e1", name="e1", kind="speaker", commune_id=e.id, tags=["chợ"], reported={}),
                "e2": Device(uid="e2", name="e2", kind="speaker", commune_id=e.id, tags=[], reported={},
                             retired_at=datetime.now(UTC)),
                "led": Device(uid="led", name="led", kind="led", commune_id=a.id, tags=["chợ"], reported={}),
            }
            s.add_all(devs.values())
            s.commit()
            ids = {k: v.id for k, v in devs.items()}

            fan = plan(s, Targets(groups=[d1.id], communes=[a.id, c.id], devices=[ids["b1"]],
                                  tags=["chợ"]))
            assert fan.topics == [f"cc/v1/grp/commune/{a.id}/cmd", f"cc/v1/grp/commune/{b.id}/cmd",
                                  f"cc/v1/grp/commune/{c.id}/cmd", "cc/v1/dev/e1/cmd"]
            assert [st.uid for st in fan.stations(s)] == ["a1", "b1", "c1", "e1"]
            assert fan.count == 4 and fan.per_commune == {a.id: 1, b.id: 1, c.id: 1, e.id: 1}

            # By official code, and `districts` (deprecated) as the same ids as groups.
            by_code = plan(s, Targets(communes=["8869"], groups=[d2.id]))
            assert by_code.topics == [f"cc/v1/grp/commune/{a.id}/cmd", f"cc/v1/grp/commune/{c.id}/cmd",
                                      f"cc/v1/grp/commune/{e.id}/cmd"]
            assert plan(s, Targets(districts=[d1.id])).topics == plan(s, Targets(groups=[d1.id])).topics

            everyone = plan(s, Targets(all=True))
            assert everyone.topics == ["cc/v1/grp/all/cmd"]
            assert [st.uid for st in everyone.stations(s)] == ["a1", "b1", "c1", "e1"]
            assert everyone.count == 4

            single = plan(s, Targets(devices=[ids["e1"], ids["e2"], ids["led"]]))
            assert single.topics == ["cc/v1/dev/e1/cmd"] and [st.uid for st in single.stations(s)] == ["e1"]
            assert single.count == 1
    finally:
        db.dispose()


REQUESTED = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def _stations(s: Session, count: int) -> list[Device]:
    """`count` speaker stations in one commune."""
    commune = Area(level="commune", name="Xã Đạo Tú")
    s.add(commune)
    s.flush()
    devs = [Device(uid=f"spk-{i}", name=f"Cụm loa {i}", kind="speaker", commune_id=commune.id,
                   tags=[], reported={}) for i in range(count)]
    s.add_all(devs)
    s.flush()
    return devs


def _past_emergency(s: Session, stations: list[Device], *, published_ms: float,
                    acked_ms: Callable[[int], float], ready_ms: Callable[[int], float] | None = None) -> int:
    """An emergency requested at REQUESTED, published `published_ms` later, whose i-th station
    acked `acked_ms(i)` after the request and was ready `ready_ms(i)` after the publish."""
    bc = Broadcast(title="Cảnh báo lũ", status="done", media=[], priority="emergency",
                   start_at=REQUESTED, duration_s=10.0, targets={"all": True})
    s.add(bc)
    s.flush()
    published = REQUESTED + timedelta(milliseconds=published_ms)

    def ready(i: int) -> datetime | None:
        return None if ready_ms is None else published + timedelta(milliseconds=ready_ms(i))

    s.add(EmergencyBroadcast(broadcast_id=bc.id, topics=[], lead_ms=700.0, requested_at=REQUESTED,
                             published_at=published))
    s.add_all([Delivery(broadcast_id=bc.id, device_id=d.id, item_id=f"b{bc.id}", state="acked",
                        acked_at=REQUESTED + timedelta(milliseconds=acked_ms(i)),
                        ready_at=ready(i))
               for i, d in enumerate(stations)])
    s.commit()
    return bc.id


def test_the_lead_is_learnt_from_the_last_emergencys_p99_ack(database_url: str) -> None:
    """100 stations acked 10, 20, ... 1,000 ms after the last emergency's request: its p99 ack
    (990 ms, picked by the database) plus the margin is the next lead, scaled to a fan-out
    twice as big."""
    db = Database(database_url)
    db.migrate()
    rt = SimpleNamespace(settings=Settings(emergency_lead_margin_s=0.35))
    try:
        with db.session() as s:
            bc_id = _past_emergency(s, _stations(s, 100), published_ms=20, acked_ms=lambda i: 10 * (i + 1))

            same = choose_lead(s, rt, [], 100)  # type: ignore[arg-type]
            assert same.seconds == pytest.approx(0.99 + 0.35)
            assert f"p99 ack 990 ms of emergency {bc_id} (100 stations)" in same.basis
            bigger = choose_lead(s, rt, [], 200)  # type: ignore[arg-type]
            assert bigger.seconds == pytest.approx(2 * 0.99 + 0.35)
    finally:
        db.dispose()


def test_the_lead_is_learnt_from_readiness_and_falls_back_to_acks(database_url: str) -> None:
    """100 stations acked 10 ... 1,000 ms after the request, but were ready to sound (audio
    decoded, relay on) 20 ... 2,000 ms after the publish: the next lead is the p99 readiness
    (1,980 ms, picked by the database) plus the margin, scaled to a bigger fan-out, and says so.
    An emergency whose stations reported no readiness (older agents) teaches from its acks."""
    db = Database(database_url)
    db.migrate()
    rt = SimpleNamespace(settings=Settings(emergency_lead_margin_s=0.35))
    try:
        with db.session() as s:
            devs = _stations(s, 100)

            def emergency(ready: bool) -> int:
                return _past_emergency(s, devs, published_ms=20, acked_ms=lambda i: 10 * (i + 1),
                                       ready_ms=(lambda i: 20 * (i + 1)) if ready else None)

            first = emergency(ready=True)
            same = choose_lead(s, rt, [], 100)  # type: ignore[arg-type]
            assert same.seconds == pytest.approx(1.98 + 0.35)
            assert f"p99 ready 1980 ms of emergency {first} (100/100 stations)" in same.basis
            bigger = choose_lead(s, rt, [], 200)  # type: ignore[arg-type]
            assert bigger.seconds == pytest.approx(2 * 1.98 + 0.35)

            older = emergency(ready=False)  # the last one came from agents without readiness
            acks = choose_lead(s, rt, [], 100)  # type: ignore[arg-type]
            assert acks.seconds == pytest.approx(0.99 + 0.35)
            assert f"p99 ack 990 ms of emergency {older} (100 stations)" in acks.basis
    finally:
        db.dispose()


def test_a_small_fleet_learns_its_lead_from_all_of_its_stations(database_url: str) -> None:
    """A commune with three clusters, all ready 1.2-1.5 s after the publish: its next emergency
    to those three starts 1.5 s + the margin after the request (not the default, which at three
    stations is shorter and would start them late); an emergency to thirty stations does not
    learn from three (it keeps the default: one slow cluster must not teach it a lead x10)."""
    db = Database(database_url)
    db.migrate()
    rt = SimpleNamespace(settings=Settings(emergency_lead_margin_s=0.35))
    try:
        with db.session() as s:
            bc_id = _past_emergency(s, _stations(s, 3), published_ms=0, acked_ms=lambda i: 50,
                                    ready_ms=lambda i: 1200 + 150 * i)

            same = choose_lead(s, rt, [], 3)  # type: ignore[arg-type]
            assert same.seconds == pytest.approx(1.5 + 0.35)
            assert f"p99 ready 1500 ms of emergency {bc_id} (3/3 stations)" in same.basis
            bigger = choose_lead(s, rt, [], 30)  # type: ignore[arg-type]
            assert bigger.seconds == pytest.approx(0.25 + 30 * 0.0005 + 0.35)
            assert "default delivery" in bigger.basis
    finally:
        db.dispose()


def test_audio_counts_as_held_when_nearly_every_station_aired_it(database_url: str) -> None:
    """No download allowance for a clip 99 % of the stations aired before: in one broadcast (a
    drill), or in several together (60 stations one day, the other 40 the next); a clip half of
    them aired, or one they only failed to play, is fresh."""
    db = Database(database_url)
    db.migrate()
    try:
        with db.session() as s:
            devs = _stations(s, 100)

            def aired(sha: str, stations: list[Device], status: str = "played") -> None:
                bc = Broadcast(title="Diễn tập", status="done", media=[sha], priority="emergency",
                               start_at=datetime(2026, 12, 1, 7, 0, tzinfo=UTC), duration_s=20.0,
                               targets={"all": True})
                s.add(bc)
                s.flush()
                s.add_all([PlayLog(device_id=d.id, broadcast_id=bc.id, item_id=f"b{bc.id}", status=status)
                           for d in stations])

            drill, split, half, failed = (SimpleNamespace(sha256=c * 64) for c in "abcd")
            aired(drill.sha256, devs)
            aired(split.sha256, devs[:60])
            aired(split.sha256, devs[60:])
            aired(half.sha256, devs[:50])
            aired(failed.sha256, devs, status="failed")
            for _ in range(4):  # newer broadcasts of the drill's clip that reached few stations
                aired(drill.sha256, devs[:5])
            s.commit()

            fresh = fresh_media(s, [drill, split, half, failed], 100)  # type: ignore[list-item]
            assert [m.sha256[0] for m in fresh] == ["c", "d"]
    finally:
        db.dispose()


def test_audio_inside_the_play_needs_no_download_allowance(database_url: str) -> None:
    """A fresh 100 kB clip for 1,000 stations: by HTTP the lead allows 1,000 downloads (7 s);
    inside the PLAY only the broker's fan-out of the bigger PLAY (1,000 x 100 kB x 16/9 at
    400 MB/s: 444 ms), and none once the lead is learnt from an emergency whose PLAY carried
    as much (its p99 ack already includes it)."""
    db = Database(database_url)
    db.migrate()
    rt = SimpleNamespace(settings=Settings(emergency_lead_margin_s=0.35, emergency_lead_max_s=60,
                                           emergency_inline_bytes_per_s=400e6))
    clip = SimpleNamespace(sha256="a" * 64, size=100_000)
    inline = {clip.sha256: "…"}  # sha -> base64 of the clip
    try:
        with db.session() as s:
            by_http = choose_lead(s, rt, [clip], 1000)  # type: ignore[arg-type,list-item]
            assert by_http.seconds == pytest.approx(0.75 + 7.0 + 0.35)
            assert "media fetch 7000 ms" in by_http.basis
            carried = choose_lead(s, rt, [clip], 1000, inline=inline)  # type: ignore[arg-type,list-item]
            assert carried.seconds == pytest.approx(0.75 + 1000 * 100_000 * 16 / 9 / 400e6 + 0.35, abs=1e-3)
            assert "audio inside the PLAY (98 KiB, fan-out 444 ms)" in carried.basis
            assert "media fetch" not in carried.basis

            commune = Area(level="commune", name="Xã Đạo Tú")
            s.add(commune)
            s.flush()
            devs = [Device(uid=f"spk-{i}", name=f"Cụm loa {i}", kind="speaker", commune_id=commune.id,
                           tags=[], reported={}) for i in range(1000)]
            requested = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
            bc = Broadcast(title="Cảnh báo lũ", status="done", media=[], priority="emergency",
                           start_at=requested, duration_s=20.0, targets={"all": True})
            s.add_all([*devs, bc])
            s.flush()
            s.add(EmergencyBroadcast(broadcast_id=bc.id, topics=[], lead_ms=2000.0, requested_at=requested,
                                     published_at=requested, inline_bytes=100_000))
            s.add_all([Delivery(broadcast_id=bc.id, device_id=d.id, item_id=f"b{bc.id}", state="acked",
                                acked_at=requested + timedelta(milliseconds=1 + i))
                       for i, d in enumerate(devs)])
            s.commit()
            learnt = choose_lead(s, rt, [clip], 1000, inline=inline)  # type: ignore[arg-type,list-item]
            assert learnt.seconds == pytest.approx(0.99 + 0.35)  # its p99 ack (990 ms) + the margin
            assert "fan-out 0 ms" in learnt.basis
    finally:
        db.dispose()


def test_only_fresh_clips_within_the_limit_go_inside(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media", max_bytes=2**20)
    deps = SimpleNamespace(settings=Settings(), media=store)

    def stored(size: int, *, corrupt: bool = False) -> SimpleNamespace:
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        sha = hashlib.sha256(data).hexdigest()
        path = store.path_for(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[:-1] + b"?" if corrupt else data)
        return SimpleNamespace(sha256=sha, size=size, data=data)

    short, long_, broken = stored(40_000), stored(INLINE_MEDIA_MAX_BYTES + 1), stored(1000, corrupt=True)
    out = inline_payloads(deps, [short, long_, broken])  # type: ignore[arg-type,list-item]
    assert list(out) == [short.sha256]  # over the limit, or not what its hash says: by HTTP
    assert base64.b64decode(out[short.sha256]) == short.data
    # Together at most INLINE_ITEM_MAX_BYTES (256 KiB): the third clip of 100 kB goes by reference.
    three = [stored(100_000 + i) for i in (1, 2, 3)]
    assert len(inline_payloads(deps, three)) == 2  # type: ignore[arg-type]
    off = SimpleNamespace(settings=Settings(emergency_inline_max_bytes=0), media=store)
    assert inline_payloads(off, [short]) == {}  # type: ignore[arg-type,list-item]


def test_a_desired_state_built_before_the_delivery_rows_carries_the_emergency(database_url: str) -> None:
    # Answer first (issue 21): the POST answers, then the Delivery rows are written. A desired state
    # built in between (a repeat's, a volume change's) lacked the emergency, and the agent stops
    # what is on air and missing from its desired state: CI saw the emergency cut off on two
    # stations 0.25 s before its start. The item must be the one the rows give, so the station
    # does not re-arm it when they come.
    from controller.services import broadcasts, emergency
    from controller.services.horizon import HorizonSources

    db = Database(database_url)
    db.migrate()
    try:
        with db.session() as s:
            here, there = Area(level="commune", name="Xã Đạo Tú"), Area(level="commune", name="Xã Hợp Hòa")
            s.add_all([here, there])
            s.flush()
            near = Device(uid="spk-near", name="Cụm loa 1", kind="speaker", commune_id=here.id,
                          tags=[], reported={})
            far = Device(uid="spk-far", name="Cụm loa 2", kind="speaker", commune_id=there.id,
                         tags=[], reported={})
            s.add(Media(sha256="c" * 64, original_name="coi.wav", content_type="audio/ogg", size=1000,
                        duration_s=2.0, codec="opus", source_sha256="d" * 64))
            now = datetime.now(UTC)
            bc = Broadcast(title="Cảnh báo lũ quét", status="scheduled", media=["c" * 64],
                           priority="emergency", start_at=now + timedelta(seconds=1), duration_s=2.0,
                           targets={"communes": [here.id]})
            s.add_all([near, far, bc])
            s.flush()
            s.add(EmergencyBroadcast(broadcast_id=bc.id, topics=[f"cc/v1/grp/commune/{here.id}/cmd"],
                                     lead_ms=600.0, requested_at=now))
            s.commit()

            window = emergency.horizon_items(s, [near, far], now=now, horizon=timedelta(hours=1))
            assert list(window) == [near.id] and [i.item_id for i in window[near.id]] == [f"b{bc.id}"]

            s.add(Delivery(broadcast_id=bc.id, device_id=near.id, item_id=f"b{bc.id}", state="pending"))
            s.commit()
            assert emergency.horizon_items(s, [near, far], now=now, horizon=timedelta(hours=1)) == {}
            rows = broadcasts.horizon_items(s, [near, far], now=now, horizon=timedelta(hours=1))
            assert rows[near.id] == window[near.id]  # the same item: nothing for the station to re-arm
            # The builder's sources read one after another: if the rows land between the two
            # queries, both give the item; the station gets it once.
            both = HorizonSources(items=(lambda *a, **k: window, broadcasts.horizon_items))
            gathered = both.gather(s, [near, far], now=now, horizon=timedelta(hours=1))
            assert [i.item_id for i in gathered[near.id]] == [f"b{bc.id}"] and gathered[far.id] == []
    finally:
        db.dispose()


def test_an_emergency_reaches_only_the_senders_communes(database_url: str) -> None:
    """The last check before the PLAY is signed: a province operator may warn every commune of
    the province, a group operator only the group's member communes (the first commune outside
    is named), and a viewer nowhere."""
    db = Database(database_url)
    db.migrate()
    try:
        with db.session() as s:
            province, group, _, a, _, c, _ = _province(s)
            s.add_all([Device(uid=f"spk-{x.id}", name="Cụm loa", kind="speaker", commune_id=x.id, tags=[],
                              reported={}) for x in (a, c)])
            s.commit()
            req = BroadcastCreate(title="Cảnh báo lũ", media_sha256="a" * 64, priority="emergency",
                                  targets={"all": True})
            everyone, own = plan(s, Targets(all=True)), plan(s, Targets(communes=[a.id]))

            def user(role: str, area: Area) -> User:
                return User(username=role, role=role, area_id=area.id, password_hash="x", active=True)

            check_rights(s, user("province", province), req, everyone)
            check_rights(s, user("group", group), req, own)
            with pytest.raises(UserError) as refused:
                check_rights(s, user("group", group), req, everyone)
            assert refused.value.status == 403 and refused.value.params == {"area": "Xã Tử Du"}
            with pytest.raises(UserError) as viewer:
                check_rights(s, user("viewer", province), req, own)
            assert viewer.value.status == 403
    finally:
        db.dispose()
