"""Provinces and communes from the packages, not typed by hand (docs/areas.md).

`vietnam-provinces` gives the 34 provinces and 3,321 communes / wards / special zones of the
two-tier government (from 1 July 2025) with their official names, kinds and codes;
`vietnamadminunits` gives, where it has them, the former units each one replaced (read from its
data files: its converter's old -> new tables and its legacy unit names), stored as
`former_names` ("Thị trấn Hợp Hòa (Huyện Tam Dương, Tỉnh Vĩnh Phúc)").

Idempotent: an area is found by its level and official code (leading zeros ignored), or, for
one typed by hand without a code, by its folded name under the same province; a second run
changes nothing, a renamed unit is updated in place (its stations stay), never duplicated.
Villages come from a CSV (`import_villages`).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Area
from controller.db.statuses import AreaLevel, CommuneKind
from controller.services import audit
from controller.services.areas import fold
from controller.services.targets import normal_code

_KINDS = {"xã": CommuneKind.XA, "phường": CommuneKind.PHUONG, "đặc khu": CommuneKind.DAC_KHU}


@dataclass(frozen=True)
class Unit:
    level: str
    name: str
    code: str
    kind: str | None = None
    former_names: tuple[str, ...] = ()


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    province: str = ""
    province_id: int | None = None
    changes: list[str] = field(default_factory=list)  # "created Xã Tam Dương (8869)", for --dry-run

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


class ImportError_(ValueError):  # (not the builtin ImportError)
    """A province the packages do not know (the message says what was asked)."""


# -- the packages -------------------------------------------------------------------------------------------
def province_units(ref: str) -> tuple[Unit, list[Unit]]:
    """The province named by code ("25") or name ("Phú Thọ", "tinh phu tho") and its communes."""
    from vietnam_provinces import Province, VietNamDivisionType, Ward

    wanted = fold(ref).removeprefix("tinh ").removeprefix("thanh pho ").strip()
    found = None
    for p in Province.iter_all():
        bare = fold(p.name).removeprefix("thanh pho ").strip()
        if (ref.strip().isdigit() and int(ref) == int(p.code)) or wanted in (bare, fold(p.name)):
            found = p
            break
    if found is None:
        raise ImportError_(f"no such province: {ref!r} (34 provinces since 1 July 2025: code or name)")
    name = found.name if found.division_type != VietNamDivisionType.TINH else f"Tỉnh {found.name}"
    province = Unit(AreaLevel.PROVINCE, name, str(int(found.code)))
    formers = former_names(str(int(found.code)))
    communes = [
        Unit(AreaLevel.COMMUNE, w.name, str(int(w.code)), _KINDS[w.division_type.value].value,
             tuple(formers.get(str(int(w.code)), ())))
        for w in sorted(Ward.iter_by_province(found.code), key=lambda w: int(w.code))
    ]  # fmt: skip
    return province, communes


def _adminunits_data() -> Path | None:
    spec = importlib.util.find_spec("vietnamadminunits")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    return path if (path / "dataset.db").exists() and (path / "converter_2025.json").exists() else None


@cache
def former_names(province_code: str) -> dict[str, list[str]]:
    """Official commune code -> the former units it replaced, "Xã Đạo Tú (Huyện Tam Dương, Tỉnh
    Vĩnh Phúc)", from vietnamadminunits' data (empty if the package is missing). A former unit
    split between several new ones is listed under each of them."""
    data = _adminunits_data()
    if data is None:
        return {}
    conn = sqlite3.connect(f"file:{data / 'dataset.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT provinceKey, wardKey, wardCode FROM admin_units WHERE provinceCode = ?",
                            (province_code.zfill(2),)).fetchall()  # fmt: skip
        if not rows:
            return {}
        province_key = rows[0][0]
        code_of = {ward_key: str(int(code)) for _, ward_key, code in rows}
        legacy_rows = conn.execute(
            "SELECT provinceKey, districtKey, wardKey, ward, district, province FROM admin_units_legacy")
        legacy = {f"{p}_{d}_{w}": (ward, district, province)
                  for p, d, w, ward, district, province in legacy_rows}
    finally:
        conn.close()
    converter = json.loads((data / "converter_2025.json").read_text(encoding="utf-8"))
    old_keys: dict[str, list[str]] = {}
    for new_key, olds in converter["DICT_PROVINCE_WARD_NO_DIVIDED"].get(province_key, {}).items():
        old_keys.setdefault(new_key, []).extend(olds)
    for old, news in converter["DICT_PROVINCE_WARD_DIVIDED"].get(province_key, {}).items():
        for new in news:
            old_keys.setdefault(new["newWardKey"], []).append(old)
    out: dict[str, list[str]] = {}
    for new_key, olds in old_keys.items():
        code = code_of.get(new_key)
        if code is None:
            continue
        names = []
        for old in olds:
            if old in legacy:
                ward, district, province = legacy[old]
                names.append(f"{ward} ({district}, {province})")
        out[code] = list(dict.fromkeys(names))
    return out


# -- into the database -------------------------------------------------------------------------------------
def _upsert(session: Session, unit: Unit, parent_id: int | None, result: ImportResult, *, dry_run: bool,
            user_id: int | None) -> Area | None:
    candidates = list(session.scalars(select(Area).where(Area.level == unit.level)))
    found = next((a for a in candidates if a.code and normal_code(a.code) == unit.code), None)
    if found is None:  # typed by hand before: same name, no code, same province
        found = next((a for a in candidates if not a.code and fold(a.name) == fold(unit.name)
                      and (unit.level == AreaLevel.PROVINCE or a.parent_id == parent_id)), None)  # fmt: skip
    if found is None:
        result.created += 1
        result.changes.append(f"created {unit.level} {unit.name} ({unit.code})")
        if dry_run:
            return None
        area = Area(level=unit.level, name=unit.name, code=unit.code, kind=unit.kind, parent_id=parent_id,
                    former_names=list(unit.former_names))  # fmt: skip
        session.add(area)
        session.flush()
        audit.record(session, user_id, "area.import", "area", area.id, name=unit.name, code=unit.code)
        return area
    # Former names found by hand are kept; the package's are added.
    formers = list(dict.fromkeys([*(found.former_names or []), *unit.former_names]))
    same_code = found.code is not None and normal_code(found.code) == unit.code
    want = {"name": unit.name, "code": found.code if same_code else unit.code, "kind": unit.kind,
            "parent_id": parent_id if parent_id is not None else found.parent_id, "former_names": formers}
    diff = {k: v for k, v in want.items() if getattr(found, k) != v}
    if not diff:
        result.unchanged += 1
        return found
    result.updated += 1
    result.changes.append(f"updated {unit.level} {found.name} ({unit.code}): {', '.join(sorted(diff))}")
    if not dry_run:
        for k, v in diff.items():
            setattr(found, k, v)
        session.flush()
        audit.record(session, user_id, "area.update", "area", found.id, fields=sorted(diff), code=unit.code)
    return found


def import_province(session: Session, ref: str, *, dry_run: bool = False, user_id: int | None = None,
                    only_codes: Iterable[str] | None = None) -> ImportResult:
    """The province and its communes (all, or those with `only_codes`). The caller commits."""
    province, communes = province_units(ref)
    if only_codes is not None:
        wanted = {normal_code(c) for c in only_codes}
        communes = [c for c in communes if c.code in wanted]
    result = ImportResult(province=province.name)
    area = _upsert(session, province, None, result, dry_run=dry_run, user_id=user_id)
    result.province_id = area.id if area else None
    for unit in communes:
        _upsert(session, unit, result.province_id, result, dry_run=dry_run, user_id=user_id)
    return result


def import_villages(session: Session, path: Path, *, dry_run: bool = False,
                    user_id: int | None = None) -> ImportResult:
    """Villages (thôn, tổ dân phố) from a CSV with the columns `commune` (official code or exact
    name of the commune), `name` and optionally `code`. Idempotent like the provinces."""
    result = ImportResult()
    communes = list(session.scalars(select(Area).where(Area.level == AreaLevel.COMMUNE)))
    by_code = {normal_code(a.code): a for a in communes if a.code}
    by_name: dict[str, list[Area]] = {}
    for a in communes:
        by_name.setdefault(fold(a.name), []).append(a)
    with path.open(encoding="utf-8-sig", newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            ref, name = (row.get("commune") or "").strip(), (row.get("name") or "").strip()
            if not ref or not name:
                raise ImportError_(f"line {n}: 'commune' and 'name' are required")
            commune = by_code.get(normal_code(ref))
            if commune is None:
                named = by_name.get(fold(ref), [])
                if len(named) != 1:
                    raise ImportError_(f"line {n}: commune {ref!r} is {'ambiguous' if named else 'unknown'}")
                commune = named[0]
            code = (row.get("code") or "").strip()
            unit = Unit(AreaLevel.VILLAGE, name, normal_code(code) if code else "")
            q = select(Area).where(Area.level == AreaLevel.VILLAGE, Area.parent_id == commune.id)
            existing = list(session.scalars(q))
            found = next((v for v in existing if code and v.code and normal_code(v.code) == unit.code), None)
            found = found or next((v for v in existing if fold(v.name) == fold(name)), None)
            if found is None:
                result.created += 1
                result.changes.append(f"created village {name} in {commune.name}")
                if not dry_run:
                    session.add(Area(level=AreaLevel.VILLAGE, name=name, code=unit.code or None,
                                     parent_id=commune.id, former_names=[]))  # fmt: skip
                    session.flush()
            elif found.name != name or (unit.code and found.code != unit.code):
                result.updated += 1
                result.changes.append(f"updated village {found.name} in {commune.name}")
                if not dry_run:
                    found.name, found.code = name, unit.code or found.code
                    session.flush()
            else:
                result.unchanged += 1
    return result
