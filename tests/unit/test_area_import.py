"""Areas from the packages (docs/areas.md), on SQLite and PostgreSQL: importing Phú Thọ gives its
148 communes with official names, kinds and codes and their former units; a second import
changes nothing; a renamed unit is updated in place, not duplicated; search finds a commune by
its current or a former name, diacritics (and đ) ignored."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from communecast.cli import main
from controller.db.models import Area, Device
from controller.db.session import Database
from controller.services import area_import, areas, seed


def _count(db: Database, level: str) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Area).where(Area.level == level)) or 0


def test_import_phu_tho_is_official_and_idempotent(db: Database) -> None:
    with db.session() as s:
        first = area_import.import_province(s, "25")
    assert (first.created, first.updated, first.unchanged) == (149, 0, 0)  # the province + 148 communes
    assert first.province == "Tỉnh Phú Thọ"
    with db.session() as s:
        communes = {a.code: a for a in s.scalars(select(Area).where(Area.level == "commune"))}
        assert len(communes) == 148
        assert sum(a.kind == "xa" for a in communes.values()) == 133
        assert sum(a.kind == "phuong" for a in communes.values()) == 15
        tam_duong, bac = communes["8869"], communes["8872"]
        assert (tam_duong.name, bac.name) == ("Xã Tam Dương", "Xã Tam Dương Bắc")
        province = s.scalars(select(Area).where(Area.level == "province")).one()
        assert province.code == "25" and tam_duong.parent_id == province.id
        assert "Thị trấn Hợp Hòa (Huyện Tam Dương, Tỉnh Vĩnh Phúc)" in tam_duong.former_names
        assert len(tam_duong.former_names) == 4  # Hợp Hòa, Kim Long, Hướng Đạo, Đạo Tú merged
        # A station on Xã Tam Dương, and a renamed unit: the next import puts the name back.
        s.add(Device(uid="spk-td", name="Cụm loa chợ", kind="speaker", commune_id=tam_duong.id, reported={}))
        bac.name = "Xã Tam Dương Bắc (gõ tay)"
    with db.session() as s:
        second = area_import.import_province(s, "Phú Thọ")
    assert (second.created, second.updated, second.unchanged) == (0, 1, 148)
    with db.session() as s:
        third = area_import.import_province(s, "tinh phu tho", dry_run=True)
    assert (third.created, third.updated, third.unchanged) == (0, 0, 149)
    assert _count(db, "commune") == 148
    with db.session() as s:
        assert s.scalar(select(Area.name).where(Area.code == "8872")) == "Xã Tam Dương Bắc"
        device = s.scalars(select(Device)).one()
        assert s.get(Area, device.commune_id).code == "8869"  # type: ignore[union-attr]
        # Search: current or former name, any diacritics, đ folded; or the code.
        found = areas.listing(s, areas.AreaFilter(level="commune", q="hop hoa"))
        assert "8869" in {a["code"] for a in found}
        dao_tu = areas.listing(s, areas.AreaFilter(level="commune", q="ĐẠO TÚ"))
        assert "8869" in {a["code"] for a in dao_tu}
        assert [a["name"] for a in areas.listing(s, areas.AreaFilter(q="08872"))] == ["Xã Tam Dương Bắc"]
        row = next(a for a in found if a["code"] == "8869")
        assert set(row) >= {"id", "level", "kind", "name", "code", "parent_id", "group_ids", "former_names"}


def test_import_by_hand_typed_commune_is_adopted_not_duplicated(db: Database) -> None:
    with db.session() as s:
        province = Area(level="province", name="Tỉnh Phú Thọ", former_names=[])
        s.add(province)
        s.flush()
        s.add(Area(level="commune", name="Xã Tam Dương", parent_id=province.id, former_names=[]))
    with db.session() as s:
        r = area_import.import_province(s, "25", only_codes=["8869", "8872"])
    assert (r.created, r.updated, r.unchanged) == (1, 2, 0)  # province and Tam Dương get codes
    assert _count(db, "commune") == 2 and _count(db, "province") == 1


def test_demo_seed_and_cli(db: Database, tmp_path: Path, capsys: object, database_url: str) -> None:
    with db.session() as s:
        communes = seed.ensure_demo_areas(s)
        assert [(c.name, c.code) for c in communes] == [("Xã Tam Dương", "8869"),
                                                        ("Xã Tam Dương Bắc", "8872")]
    with db.session() as s:
        assert len(seed.ensure_demo_areas(s)) == 2  # idempotent
        group = s.scalars(select(Area).where(Area.level == "group")).one()
        assert group.name == "Khu vực Tam Dương (huyện cũ)"
        listed = areas.listing(s, areas.AreaFilter(level="group"))
        assert listed[0]["commune_ids"] == sorted(c.id for c in communes)
    villages = tmp_path / "thon.csv"
    villages.write_text("commune,name,code\n8869,Thôn Đồng Bông,\nXã Tam Dương Bắc,Thôn Hoàng Hoa 1,01\n",
                        encoding="utf-8")  # fmt: skip
    assert main(["areas", "import-villages", str(villages), "--database-url", database_url]) == 0
    assert main(["areas", "import-villages", str(villages), "--database-url", database_url]) == 0
    assert _count(db, "village") == 2
    assert main(["areas", "import", "--province", "25", "--dry-run", "--database-url", database_url]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "villages: 2 created, 0 updated, 0 unchanged" in out
    assert "villages: 0 created, 0 updated, 2 unchanged" in out
    assert "Tỉnh Phú Thọ: 146 created, 0 updated, 3 unchanged (dry run: nothing written)" in out
    assert _count(db, "commune") == 2
