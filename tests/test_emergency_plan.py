"""How an emergency's targets become the fewest topics (SQLite and PostgreSQL): districts and
communes go to their group topics, single stations and tags to their own command topic unless a
group already covers them; LED boards and retired stations are never counted as speakers."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.db.models import Area, Device
from controller.db.session import Database
from controller.services.emergency import plan
from controller.services.targets import Targets


def test_targets_map_to_the_fewest_group_topics(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    try:
        with db.session() as s:
            province = Area(level="province", name="Tỉnh Vĩnh Phúc")
            s.add(province)
            s.flush()
            d1 = Area(level="district", name="Huyện Tam Dương", parent_id=province.id)
            d2 = Area(level="district", name="Huyện Lập Thạch", parent_id=province.id)
            s.add_all([d1, d2])
            s.flush()
            a = Area(level="commune", name="Xã Hợp Hòa", parent_id=d1.id)
            b = Area(level="commune", name="Xã Kim Long", parent_id=d1.id)
            c = Area(level="commune", name="Xã Tử Du", parent_id=d2.id)
            e = Area(level="commune", name="Xã Bàn Giản", parent_id=d2.id)
            s.add_all([a, b, c, e])
            s.flush()
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

            fan = plan(s, Targets(districts=[d1.id], communes=[a.id, c.id], devices=[ids["b1"]],
                                  tags=["chợ"]))
            assert fan.topics == [f"cc/v1/grp/district/{d1.id}/cmd", f"cc/v1/grp/commune/{c.id}/cmd",
                                  "cc/v1/dev/e1/cmd"]
            assert [st.uid for st in fan.stations] == ["a1", "b1", "c1", "e1"]

            everyone = plan(s, Targets(all=True))
            assert everyone.topics == ["cc/v1/grp/all/cmd"]
            assert [st.uid for st in everyone.stations] == ["a1", "b1", "c1", "e1"]

            single = plan(s, Targets(devices=[ids["e1"], ids["e2"], ids["led"]]))
            assert single.topics == ["cc/v1/dev/e1/cmd"] and [st.uid for st in single.stations] == ["e1"]
    finally:
        db.dispose()
