"""Play-log reports: CSV and XLSX exports, monthly minutes per commune, missed/failed counts.

Times are shown to people in Asia/Ho_Chi_Minh as dd/mm/yyyy HH:MM:SS. A schedule
occurrence is recognised by its item id (`s{id}@…`), a one-off broadcast by its
broadcast id, so both land in the same report.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Area, Broadcast, Device, PlayLog
from controller.db.models_schedules import Schedule
from controller.services.schedules import parse_item_id

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
STATUS_VI = {"played": "Đã phát", "interrupted": "Bị ngắt", "failed": "Lỗi", "missed": "Bỏ lỡ",
             "playing": "Đang phát"}
COLUMNS = [
    ("Thời gian bắt đầu", "Started"), ("Thời gian kết thúc", "Finished"), ("Xã/phường", "Commune"),
    ("Trạm", "Station"), ("Mã trạm", "Station uid"), ("Nội dung", "Bulletin"), ("Loại", "Kind"),
    ("Mã mục", "Item id"), ("Trạng thái", "Status"), ("Số phút", "Minutes"),
    ("Lệch giờ (ms)", "Start error (ms)"), ("Lý do", "Reason"),
]


@dataclass(frozen=True)
class Filters:
    start: datetime | None = None  # aware
    end: datetime | None = None
    commune_id: int | None = None


def _when(r: PlayLog) -> datetime | None:
    return r.started_at or _item_instant(r.item_id) or r.updated_at


def _item_instant(item_id: str) -> datetime | None:
    parsed = parse_item_id(item_id)
    return parsed[1] if parsed else None


def _fmt(dt: datetime | None) -> str:
    return dt.astimezone(TZ).strftime("%d/%m/%Y %H:%M:%S") if dt else ""


def rows(session: Session, f: Filters, lang: str = "vi") -> list[list[Any]]:
    q = (select(PlayLog, Device, Area).join(Device, Device.id == PlayLog.device_id)
         .join(Area, Area.id == Device.commune_id).order_by(PlayLog.id))
    if f.commune_id is not None:
        q = q.where(Device.commune_id == f.commune_id)
    found = session.execute(q).all()
    bc_ids = {r.broadcast_id for r, _, _ in found if r.broadcast_id}
    titles_b = dict(session.execute(
        select(Broadcast.id, Broadcast.title).where(Broadcast.id.in_(bc_ids))).all())
    sc_ids = {p[0] for r, _, _ in found if (p := parse_item_id(r.item_id))}
    titles_s = dict(session.execute(select(Schedule.id, Schedule.title).where(Schedule.id.in_(sc_ids))).all())
    out: list[list[Any]] = []
    for r, dev, area in found:
        when = _when(r)
        if when is None or (f.start and when < f.start) or (f.end and when >= f.end):
            continue
        parsed = parse_item_id(r.item_id)
        if parsed:
            kind, title = ("lịch" if lang == "vi" else "schedule"), titles_s.get(parsed[0], "")
        else:
            kind, title = ("bản tin" if lang == "vi" else "broadcast"), titles_b.get(r.broadcast_id or -1, "")
        minutes = ""
        if r.started_at and r.finished_at:
            minutes = round((r.finished_at - r.started_at).total_seconds() / 60, 2)
        status = STATUS_VI.get(r.status, r.status) if lang == "vi" else r.status
        out.append([_fmt(r.started_at or when), _fmt(r.finished_at), area.name, dev.name, dev.uid, title,
                    kind, r.item_id, status, minutes, r.start_error_ms, r.reason or ""])
    return out


def header(lang: str) -> list[str]:
    return [vi if lang == "vi" else en for vi, en in COLUMNS]


def to_csv(session: Session, f: Filters, lang: str = "vi") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header(lang))
    w.writerows(["" if v is None else v for v in row] for row in rows(session, f, lang))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel opens Vietnamese correctly


def monthly(session: Session, f: Filters) -> list[dict[str, Any]]:
    """Per commune and local month: minutes really broadcast, plays, missed, failed, interrupted."""
    q = (select(PlayLog, Device.commune_id, Area.name).join(Device, Device.id == PlayLog.device_id)
         .join(Area, Area.id == Device.commune_id))
    if f.commune_id is not None:
        q = q.where(Device.commune_id == f.commune_id)
    acc: dict[tuple[int, str], dict[str, Any]] = {}
    for r, commune_id, name in session.execute(q).all():
        when = _when(r)
        if when is None or (f.start and when < f.start) or (f.end and when >= f.end):
            continue
        month = when.astimezone(TZ).strftime("%m/%Y")
        a = acc.setdefault((commune_id, month), {"commune_id": commune_id, "commune": name, "month": month,
                                                 "minutes": 0.0, "played": 0, "missed": 0, "failed": 0,
                                                 "interrupted": 0})
        if r.status in ("played", "interrupted") and r.started_at and r.finished_at:
            a["minutes"] += (r.finished_at - r.started_at).total_seconds() / 60
        if r.status in ("played", "missed", "failed", "interrupted"):
            a[r.status] += 1
    out = sorted(acc.values(), key=lambda a: (a["commune"], a["month"][3:], a["month"][:2]))
    for a in out:
        a["minutes"] = round(a["minutes"], 2)
    return out


def to_xlsx(session: Session, f: Filters, lang: str = "vi") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Nhật ký phát" if lang == "vi" else "Play log"
    ws.append(header(lang))
    for row in rows(session, f, lang):
        ws.append(row)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    summary = wb.create_sheet("Tổng hợp tháng" if lang == "vi" else "Monthly")
    summary.append(["Xã/phường", "Tháng", "Số phút đã phát", "Đã phát", "Bỏ lỡ", "Lỗi", "Bị ngắt"]
                   if lang == "vi" else ["Commune", "Month", "Minutes broadcast", "Played", "Missed",
                                         "Failed", "Interrupted"])
    for a in monthly(session, f):
        summary.append([a["commune"], a["month"], a["minutes"], a["played"], a["missed"], a["failed"],
                        a["interrupted"]])
    for cell in summary[1]:
        cell.font = Font(bold=True)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
