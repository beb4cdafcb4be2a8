"""Issue 20, item 6: bulletin and emergency targets picked by name, never by typing station codes.

Typing "tam duong" (no diacritics) finds "Xã Tam Dương" (and by its former name "hop hoa"); a
bulletin sent to it reaches only that commune's stations. The search works without JavaScript
(the form posted back to /bulletins/pick, everything typed kept) and as JSON for the script;
only the caller's area is offered, and a crafted pick outside it is refused with nothing stored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from controller.db.models import Area, Broadcast, Delivery, Media
from tests.support.browser import ADMIN_PW, PW, Panel, PanelClient, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _seed(panel: Panel) -> tuple[dict, str]:
    ids = panel.seed(stations_per_commune=2)
    with panel.rt.db.session() as s:  # the merged commune (docs/areas.md): new name, former one kept
        area = s.get(Area, ids["hop_hoa"])
        assert area is not None
        area.name, area.code, area.former_names = "Xã Tam Dương", "8869", ["Xã Hợp Hòa"]
        sha = secrets.token_hex(32)
        s.add(Media(sha256=sha, original_name="thong-bao.mp3", content_type="audio/ogg", size=1000,
                    duration_s=2.0, codec="opus", source_sha256=sha))
        s.commit()
    return ids, sha


def _login(panel: Panel, username: str, password: str = PW) -> PanelClient:
    c = panel.client()
    c.login(username, password)
    return c


def _picks(html: str) -> list[str]:
    return re.findall(r'name="pick" value="([^"]+)"', html)


def test_pick_tam_duong_by_typing_without_diacritics_reaches_only_its_stations(panel: Panel) -> None:
    ids, sha = _seed(panel)
    c = _login(panel, "admin", ADMIN_PW)
    page = c.http.get("/bulletins").text
    assert "spk-" not in page.split('id="send-form"')[1].split("</form>")[0]  # no station codes to type

    # Without JavaScript: the form posted back with the search, the title typed so far kept.
    found = c.post_form("/bulletins/pick", {"title": "Thông báo họp dân", "media_sha256": sha,
                                             "target_q": "tam duong"}, csrf_from="/bulletins")
    assert found.status_code == 200
    assert _picks(found.text)[0] == f"commune:{ids['hop_hoa']}" and "Xã Tam Dương (8869)" in found.text
    assert 'value="Thông báo họp dân"' in found.text
    assert f"commune:{ids['kim_long']}" not in _picks(found.text)
    # ...by the former name too, and stations by name (diacritics ignored).
    former = c.post_form("/bulletins/pick", {"target_q": "HOP HOA"}, csrf_from="/bulletins")
    assert f"commune:{ids['hop_hoa']}" in _picks(former.text)
    station = c.post_form("/bulletins/pick", {"target_q": "cụm loa 2"}, csrf_from="/bulletins")
    assert f"station:{ids['devices'][ids['kim_long']][1]}" in _picks(station.text)
    # A ticked choice stays ticked (a chip) across another search.
    kept = c.post_form("/bulletins/pick", {"target_q": "kim", "pick": f"commune:{ids['hop_hoa']}"},
                       csrf_from="/bulletins")
    assert re.search(rf'value="commune:{ids["hop_hoa"]}" checked', kept.text)
    assert f"commune:{ids['kim_long']}" in _picks(kept.text)

    # The script's search: JSON, the same answer.
    js = c.http.get("/panel/targets.json?q=tam%20duong").json()
    assert js["results"][0] == {"key": f"commune:{ids['hop_hoa']}", "kind": "commune",
                                "label": "Xã Tam Dương (8869)", "kind_label": "Xã"}

    sent = c.post_form("/bulletins/send", {"title": "Thông báo họp dân", "media_sha256": sha,
                                            "priority": "normal", "target": "picked",
                                            "pick": f"commune:{ids['hop_hoa']}"}, csrf_from="/bulletins")
    assert sent.status_code == 303, sent.text[:500]
    with panel.rt.db.session() as s:
        bc = s.scalars(select(Broadcast).order_by(Broadcast.id.desc())).first()
        assert bc is not None
        reached = set(s.scalars(select(Delivery.device_id).where(Delivery.broadcast_id == bc.id)))
    assert reached == set(ids["devices"][ids["hop_hoa"]])  # only Tam Dương's two stations


def test_picker_offers_only_the_callers_area_and_refuses_a_crafted_pick(panel: Panel) -> None:
    ids, sha = _seed(panel)
    c = _login(panel, "canbo.hophoa")
    assert c.http.get("/panel/targets.json?q=xuan hoa").json()["results"] == []
    own = c.http.get("/panel/targets.json?q=cum loa").json()["results"]
    assert own and all("Tam Dương" in r["label"] for r in own)  # their own stations only
    r = c.post_form("/bulletins/send", {"title": "x", "media_sha256": sha, "priority": "normal",
                                         "target": "picked", "pick": f"commune:{ids['xuan_hoa']}"},
                    csrf_from="/bulletins")
    assert r.status_code == 403
    r = c.post_form("/bulletins/send", {"title": "x", "media_sha256": sha, "priority": "normal",
                                         "target": "picked",
                                         "pick": f"station:{ids['devices'][ids['kim_long']][0]}"},
                    csrf_from="/bulletins")
    assert r.status_code == 403
    # "All" with places ticked is a question, not a guess; nothing ticked with "by name" too.
    r = c.post_form("/bulletins/send", {"title": "x", "media_sha256": sha, "priority": "normal",
                                         "target": "all", "pick": f"commune:{ids['hop_hoa']}"},
                    csrf_from="/bulletins")
    assert r.status_code == 422
    r = c.post_form("/bulletins/send", {"title": "x", "media_sha256": sha, "priority": "normal",
                                         "target": "picked"}, csrf_from="/bulletins")
    assert r.status_code == 422 and "Hãy chọn nơi phát" in r.text
    with panel.rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 0
    anonymous = panel.client().http.get("/panel/targets.json?q=tam", follow_redirects=False)
    assert anonymous.status_code in (303, 401)
    viewer = _login(panel, "nguoixem")
    assert viewer.post_form("/bulletins/pick", {"target_q": "tam"}, csrf_from="/bulletins").status_code == 403


def test_emergency_form_picks_by_name(panel: Panel) -> None:
    ids, _sha = _seed(panel)
    c = _login(panel, "canbo.hophoa")
    found = c.post_form("/emergency/pick", {"text": "Bão số 3 đổ bộ", "target_q": "tam duong"},
                        csrf_from="/emergency")
    assert found.status_code == 200 and _picks(found.text)[0] == f"commune:{ids['hop_hoa']}"
    assert "Bão số 3 đổ bộ" in found.text
    confirm = c.post_form("/emergency/confirm", {"text": "Bão số 3 đổ bộ", "target": "picked",
                                                  "pick": f"commune:{ids['hop_hoa']}", "repeat": "none"},
                          csrf_from="/emergency")
    assert confirm.status_code == 200, confirm.text[:800]
    assert "Xã Tam Dương" in confirm.text
    assert f'name="pick" value="commune:{ids["hop_hoa"]}"' in confirm.text  # carried to the start
    refused = c.post_form("/emergency/confirm", {"text": "Bão", "target": "picked", "repeat": "none",
                                                  "pick": f"commune:{ids['xuan_hoa']}"},
                          csrf_from="/emergency")
    assert refused.status_code == 403
