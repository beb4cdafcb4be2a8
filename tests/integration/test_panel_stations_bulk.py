"""Issue 20, item 5: the stations list in bulk, in-process (the whole-system test with simulated
horns is tests/system/test_stations_bulk.py).

CSV import with a preview (one bad line imports nothing and names the line; a good file imports
all), the export of the filtered list (UTF-8 with a BOM) round-trips Vietnamese names, the new
filters, and who may do what: another commune's technician, a viewer and an anonymous client
cannot bulk-act (nothing stored), retire asks for a confirmation first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from controller.db.models import Area, Device, User
from controller.db.models_ops import DiagnosticCommandRow
from controller.web import accounts
from tests.support.browser import PW, Panel, PanelClient, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _as(panel: Panel, username: str) -> PanelClient:
    c = panel.client()
    c.login(username, PW)
    return c


def _admin(panel: Panel) -> PanelClient:
    from tests.support.browser import ADMIN_PW

    c = panel.client()
    c.login("admin", ADMIN_PW)
    return c


def _technician_of(panel: Panel, commune_id: int, username: str = "kythuat.kimlong") -> PanelClient:
    with panel.rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        accounts.create_user(s, admin, username, PW, "technician", commune_id)
    return _as(panel, username)


def _count(panel: Panel, model: type) -> int:
    with panel.rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _names(panel: Panel) -> list[str]:
    with panel.rt.db.session() as s:
        return list(s.scalars(select(Device.name).where(Device.retired_at.is_(None)).order_by(Device.id)))


def _import(c: PanelClient, text: str, *, confirm: bool = False) -> object:
    if confirm:
        return c.post_form("/stations-import", {"csv_text": text, "confirm": "yes"},
                           csrf_from="/stations-import")
    return c.post_form("/stations-import", csrf_from="/stations-import",
                       files={"file": ("tram.csv", text.encode("utf-8"), "text/csv")})


def test_csv_import_preview_all_or_nothing_and_export_round_trip(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    with panel.rt.db.session() as s:
        s.get(Area, ids["hop_hoa"]).code = "8869"  # type: ignore[union-attr]
        s.commit()
    c = _admin(panel)
    before = _names(panel)

    bad = ("name,kind,commune_code,lat,lon\n"
           "Cụm loa Đình làng Thượng,speaker,8869,21.31,105.51\n"
           "Bảng tin Chợ Hợp Hòa,loa-to,8869,,\n"         # line 3: kind
           "Cụm loa Xóm Đồng,speaker,9999,,\n")            # line 4: no such commune
    r = _import(c, bad)
    assert r.status_code == 422
    text = r.text
    assert "Tệp có lỗi, chưa nhập trạm nào" in text
    assert "Dòng 3: cột “kind” không phải giá trị được chấp nhận." in text
    assert "Dòng 4: cột “commune_code” không có xã này." in text
    assert "Dòng 2" not in text and 'id="import-confirm"' not in text
    assert _names(panel) == before  # nothing stored

    good = ("name,kind,commune_code,lat,lon,tags\n"
            "Cụm loa Đình làng Thượng,speaker,8869,21.31,105.51,chợ;đình\n"
            "Bảng tin Chợ Hợp Hòa,led,8869,,,\n")
    preview = _import(c, good)
    assert preview.status_code == 200 and 'id="import-confirm"' in preview.text
    assert "Xem trước: 2 trạm sẽ được tạo" in preview.text and "Bảng tin Chợ Hợp Hòa" in preview.text
    assert _names(panel) == before  # the preview stores nothing
    carried = re.search(r'name="csv_text" value="([^"]*)"', preview.text, re.S)
    assert carried
    import html

    done = _import(c, html.unescape(carried.group(1)), confirm=True)
    assert done.status_code == 303 and "done=imported&n=2" in done.headers["location"]
    assert _names(panel) == [*before, "Cụm loa Đình làng Thượng", "Bảng tin Chợ Hợp Hòa"]
    assert "Đã nhập 2 trạm." in c.http.get(done.headers["location"]).text

    # Export the filtered list (Hợp Hòa's stations): UTF-8 with a BOM, the import's columns.
    export = c.http.get(f"/stations.csv?commune={ids['hop_hoa']}")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.content.startswith(b"\xef\xbb\xbf")
    rows = export.content.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("name,kind,commune_code,commune_id")
    assert len(rows) == 4 and all("Xã Hợp Hòa" in row for row in rows[1:])
    # ...and it imports again, names with diacritics intact.
    again = _import(c, export.content.decode("utf-8-sig"))
    assert again.status_code == 200 and "Xem trước: 3 trạm sẽ được tạo" in again.text
    exported_names = [row.split(",")[0] for row in rows[1:]]
    assert "Cụm loa Đình làng Thượng" in exported_names and "Bảng tin Chợ Hợp Hòa" in exported_names

    # In English the line problems are English.
    c.http.get("/lang?to=en&next=/stations")
    english = _import(c, bad)
    assert "Line 3: column “kind”: is not an accepted value." in english.text


def test_import_outside_the_technicians_commune_imports_nothing(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    c = _technician_of(panel, ids["kim_long"])
    before = _names(panel)
    text = (f"name,kind,commune_id\nCụm loa Kim Long 9,speaker,{ids['kim_long']}\n"
            f"Cụm loa Hợp Hòa 9,speaker,{ids['hop_hoa']}\n")
    r = _import(c, text)
    assert r.status_code == 422 and "Dòng 3:" in r.text and "Xã Hợp Hòa" in r.text
    assert _import(c, text, confirm=True).status_code == 422
    assert _names(panel) == before
    assert _as(panel, "nguoixem").http.get("/stations-import").status_code == 403


def test_bulk_actions_are_refused_whole_outside_the_area(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=2)
    hop_hoa, kim_long = ids["devices"][ids["hop_hoa"]], ids["devices"][ids["kim_long"]]
    tech = _technician_of(panel, ids["kim_long"])
    page = tech.http.get("/stations").text
    assert 'id="bulk-form"' in page and "Hợp Hòa" not in page  # only their own commune's stations

    # One Kim Long station and one of Hợp Hòa (a crafted form): refused whole, nothing stored.
    r = tech.post_form("/stations/bulk", {"action": "test_tone", "ids": [kim_long[0], hop_hoa[0]]},
                       csrf_from="/stations")
    assert r.status_code == 403
    assert "1 trạm đã chọn nằm ngoài địa bàn được giao (Xã Hợp Hòa)" in r.text
    assert "Cụm loa 1 – Xã Hợp Hòa" not in r.text  # another area's station names are not revealed
    r = tech.post_form("/stations/bulk", {"action": "retire", "ids": [kim_long[0], hop_hoa[0]],
                                          "confirm": "yes"}, csrf_from="/stations")
    assert r.status_code == 403
    assert _count(panel, DiagnosticCommandRow) == 0 and len(_names(panel)) == 6

    # A viewer has no bulk controls and is refused; an anonymous client is sent to log in;
    # a missing CSRF token is refused.
    viewer = _as(panel, "nguoixem")
    assert 'id="bulk-form"' in viewer.http.get("/stations").text  # the form carries the export filters
    assert 'id="bulk-action"' not in viewer.http.get("/stations").text
    r = viewer.post_form("/stations/bulk", {"action": "test_tone", "ids": [kim_long[0]]},
                         csrf_from="/stations")
    assert r.status_code == 403
    anon = panel.client()
    r = anon.http.post("/stations/bulk", data={"action": "test_tone", "ids": [kim_long[0]]},
                       follow_redirects=False)
    assert r.status_code in (303, 401)  # a form post without a session: not logged in
    r = tech.http.post("/stations/bulk", data={"action": "test_tone", "ids": [kim_long[0]], "csrf": "x"},
                       follow_redirects=False)
    assert r.status_code == 403
    assert anon.http.get("/stations.csv", follow_redirects=False).status_code in (303, 401)
    assert _count(panel, DiagnosticCommandRow) == 0

    # Retire: first the confirmation listing the stations, nothing retired; then the real thing.
    ask = tech.post_form("/stations/bulk", {"action": "retire", "ids": kim_long}, csrf_from="/stations")
    assert ask.status_code == 200 and 'id="retire-confirm"' in ask.text
    assert "Ngừng sử dụng 2 trạm?" in ask.text and "Cụm loa 2 – Xã Kim Long" in ask.text
    assert len(_names(panel)) == 6
    done = tech.post_form("/stations/bulk", {"action": "retire", "ids": kim_long, "confirm": "yes"},
                          csrf_from="/stations")
    assert done.status_code == 303, done.text
    assert "Đã ngừng sử dụng 2 trạm." in tech.http.get(done.headers["location"]).text
    assert not any("Kim Long" in n for n in _names(panel)) and len(_names(panel)) == 4


def test_filters_by_group_and_alarm(panel: Panel) -> None:
    from controller.db.models_health import Alarm

    ids = panel.seed(stations_per_commune=2)
    c = _admin(panel)
    assert "4 trạm" in c.http.get(f"/stations?group={ids['district']}").text
    assert "2 trạm" in c.http.get(f"/stations?group={ids['other_group']}").text
    with panel.rt.db.session() as s:
        s.add(Alarm(device_id=ids["devices"][ids["xuan_hoa"]][0], kind="offline", state="open"))
        s.commit()
    page = c.http.get("/stations?state=alarm").text
    assert "1 trạm" in page and "Cụm loa 1 – Xã Xuân Hòa" in page
    export = c.http.get("/stations.csv?state=alarm").content.decode("utf-8-sig").splitlines()
    assert len(export) == 2 and export[1].startswith("Cụm loa 1 – Xã Xuân Hòa,speaker")
