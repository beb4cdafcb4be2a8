"""The dashboard tells admins when the last backup ran and whether it failed (issue 18, item 4):
Vietnamese first, English on request, dd/mm/yyyy 24-hour in the controller's zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.db.models_backup import BackupRun
from controller.db.statuses import BackupStatus, BackupTrigger
from tests.support.browser import PW, Panel, running_panel


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Panel]:
    with running_panel(tmp_path, f"sqlite:///{tmp_path / 'panel.db'}") as p:
        yield p


def test_dashboard_shows_the_last_backup_to_admins(lite: Panel) -> None:
    lite.seed(stations_per_commune=1)
    admin = lite.client()
    admin.login("admin", lite.settings.admin_password or "")
    page = admin.http.get("/").text
    assert 'id="dash-backup" data-state="none"' in page
    assert "Chưa có bản sao lưu nào." in page and "Chưa bật sao lưu tự động hằng đêm" in page

    with lite.rt.db.session() as s:  # 19:30 UTC = 02:30 the next day in Hà Nội
        s.add(BackupRun(trigger=BackupTrigger.NIGHTLY, status=BackupStatus.OK, file="/b/1.ccbackup",
                        started_at=datetime(2026, 12, 4, 19, 30, tzinfo=UTC), size_bytes=3 * 2**20))
        s.add(BackupRun(trigger=BackupTrigger.NIGHTLY, status=BackupStatus.FAILED, file="/b/2.ccbackup",
                        started_at=datetime(2026, 12, 5, 19, 30, tzinfo=UTC), error="OSError: đĩa đầy"))
    page = admin.http.get("/").text
    assert 'data-state="failed"' in page
    assert "Lần sao lưu gần nhất: 06/12/2026 02:30, thất bại: OSError: đĩa đầy" in page
    assert "Bản sao lưu thành công gần nhất: 05/12/2026 02:30." in page

    admin.http.cookies.set("cc_lang", "en")
    page = admin.http.get("/").text
    assert "Last backup: 06/12/2026 02:30, failed: OSError: đĩa đầy" in page
    assert "Last successful backup: 05/12/2026 02:30." in page
    assert "Nightly backup is not enabled" in page

    viewer = lite.client()
    viewer.login("nguoixem", PW)
    assert "dash-backup" not in viewer.http.get("/").text
