"""CAP area mapping on SQLite and PostgreSQL (docs/cap.md): configured geocodes to our areas,
polygon and circle against station GPS, areaDesc names with or without diacritics/prefixes."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from controller.db.models import Area, AreaGroupMember, Device
from controller.db.session import Database
from controller.services.cap.areas import AreaMatch, haversine_km, in_polygon, map_areas
from controller.services.cap.parse import CapArea

NAMES = ["DVHC"]
MAP = {"SAME=006037": "26"}  # a foreign scheme mapped to our code for the province


@pytest.fixture
def db(db: Database) -> tuple[Database, dict[str, int]]:
    """The shared migrated database (tests/conftest.py) with an area tree and four stations."""
    ids: dict[str, int] = {}
    with db.session() as s:
        def area(key: str, level: str, name: str, parent: str | None, code: str | None = None,
                 group: str | None = None, former: list[str] | None = None) -> None:
            a = Area(level=level, name=name, parent_id=ids[parent] if parent else None, code=code,
                     former_names=former or [])
            s.add(a)
            s.flush()
            ids[key] = a.id
            if group:
                s.add(AreaGroupMember(group_id=ids[group], commune_id=a.id))

        # Two-tier (docs/areas.md): communes under the province, former districts as groups.
        area("p", "province", "Tỉnh Vĩnh Phúc", None, "26")
        area("d1", "group", "Huyện Tam Dương", "p", "249")
        area("d2", "group", "Huyện Lập Thạch", "p", "246")
        area("hop_hoa", "commune", "Xã Hợp Hòa", "p", "08869", "d1")
        area("kim_long", "commune", "Xã Kim Long", "p", "08872", "d1")
        area("tan_lap_1", "commune", "Xã Tân Lập", "p", None, "d1")
        area("tan_lap_2", "commune", "Xã Tân Lập", "p", None, "d2")
        area("thon", "village", "Thôn Đồng Bông", "hop_hoa", "08869-01")
        area("dao_tu", "commune", "Xã Tam Sơn", "p", "08884", "d1",
             former=["Xã Đạo Tú (Huyện Tam Dương, Tỉnh Vĩnh Phúc)"])
        # Stations: two in Hợp Hòa (one without GPS), one in Kim Long, an LED board in Kim Long.
        for key, commune, kind, lat, lon in [("s1", "hop_hoa", "speaker", 21.3600, 105.5500),
                                             ("s2", "hop_hoa", "speaker", None, None),
                                             ("s3", "kim_long", "speaker", 21.4200, 105.6000),
                                             ("led", "kim_long", "led", 21.4210, 105.6010)]:
            d = Device(uid=f"dev-{key}", name=key, kind=kind, commune_id=ids[commune], tags=[],
                       reported={}, lat=lat, lon=lon)  # fmt: skip
            s.add(d)
            s.flush()
            ids[key] = d.id
        s.commit()
    return db, ids


def match(s: Session, *areas: CapArea) -> AreaMatch:
    return map_areas(s, list(areas), geocode_names=NAMES, geocode_map=MAP)


def test_geocodes_select_communes(db: tuple[Database, dict[str, int]]) -> None:
    database, ids = db
    with database.session() as s:
        m = match(s, CapArea("ignored", geocodes=[("DVHC", "08869")]))
        assert m.communes == {ids["hop_hoa"]} and not m.devices
        m = match(s, CapArea("x", geocodes=[("dvhc", "249")]))  # a group (former district): its communes
        assert m.communes == {ids["hop_hoa"], ids["kim_long"], ids["tan_lap_1"], ids["dao_tu"]}
        m = match(s, CapArea("x", geocodes=[("SAME", "006037")]))  # mapped to the province
        assert len(m.communes) == 5
        m = match(s, CapArea("x", geocodes=[("DVHC", "8869")]))  # leading zeros do not matter
        assert m.communes == {ids["hop_hoa"]}
        m = match(s, CapArea("x", geocodes=[("DVHC", "08869-01")]))  # a village: its commune
        assert m.communes == {ids["hop_hoa"]}
        # A known scheme with a code that is not ours: not for us, and areaDesc is not guessed.
        m = match(s, CapArea("Xã Kim Long", geocodes=[("DVHC", "99999")]))
        assert m.empty
        # An unknown scheme is ignored: the name decides.
        m = match(s, CapArea("Xã Kim Long", geocodes=[("SAME", "006109")]))
        assert m.communes == {ids["kim_long"]}


def test_polygon_and_circle_against_station_gps(db: tuple[Database, dict[str, int]]) -> None:
    database, ids = db
    around_s1 = [(21.35, 105.54), (21.35, 105.56), (21.37, 105.56), (21.37, 105.54), (21.35, 105.54)]
    with database.session() as s:
        m = match(s, CapArea("Vùng A", polygons=[around_s1]))
        assert m.devices == {ids["s1"]} and not m.communes  # s2 has no GPS: not inside
        m = match(s, CapArea("Vùng B", circles=[(21.4200, 105.6000, 0.5)]))
        assert m.devices == {ids["s3"], ids["led"]}  # the board mirrors the text
        m = match(s, CapArea("Xã Hợp Hòa", circles=[(10.0, 106.0, 5.0)]))  # geometry decides, not name
        assert m.empty
    assert in_polygon(21.36, 105.55, around_s1) and not in_polygon(21.40, 105.55, around_s1)
    assert 2.0 < haversine_km(21.36, 105.55, 21.38, 105.55) < 2.5


def test_area_desc_names(db: tuple[Database, dict[str, int]]) -> None:
    database, ids = db
    with database.session() as s:
        assert match(s, CapArea("Xã Hợp Hòa")).communes == {ids["hop_hoa"]}
        assert match(s, CapArea("xa hop hoa")).communes == {ids["hop_hoa"]}  # no diacritics
        assert match(s, CapArea("HỢP HOÀ")).communes == {ids["hop_hoa"]}  # old-style tone mark
        # An address, not "a commune plus the whole district".
        m = match(s, CapArea("Xã Kim Long, huyện Tam Dương, tỉnh Vĩnh Phúc"))
        assert m.communes == {ids["kim_long"]}
        assert match(s, CapArea("Xã Hợp Hòa và xã Kim Long")).communes == {ids["hop_hoa"], ids["kim_long"]}
        assert len(match(s, CapArea("Huyện Tam Dương")).communes) == 4
        # Two communes share a name: the district named beside it says which one.
        assert match(s, CapArea("Xã Tân Lập, huyện Lập Thạch")).communes == {ids["tan_lap_2"]}
        ambiguous = match(s, CapArea("Xã Tân Lập"))
        assert ambiguous.empty and any("ambiguous" in n for n in ambiguous.notes)
        assert match(s, CapArea("Los Angeles County")).empty
        # A unit merged away in 2025 is found under its successor's former names.
        assert match(s, CapArea("Xã Đạo Tú")).communes == {ids["dao_tu"]}
        assert match(s, CapArea("xa dao tu, huyen Tam Duong")).communes == {ids["dao_tu"]}


def test_commune_code_aliases(db: tuple[Database, dict[str, int]]) -> None:
    """MA_XA names a commune: the same digits as a province's code do not pick the province."""
    database, ids = db
    with database.session() as s:
        m = map_areas(s, [CapArea("x", geocodes=[("MA_XA", "08872")])], geocode_names=["DVHC", "MA_XA"],
                      geocode_map={})  # fmt: skip
        assert m.communes == {ids["kim_long"]}
