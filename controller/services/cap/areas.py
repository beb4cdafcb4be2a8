"""Where a CAP alert is for, in our terms: communes and stations.

Per <area>, in this order (docs/cap.md):
1. <geocode> in a configured scheme (Vietnamese administrative unit codes, "DVHC" and its
   aliases such as "MA_XA", matched to the official `Area.code`, leading zeros ignored, or a
   `valueName=value` -> code table) names areas; a province means every commune under it, a
   group of communes its members, a village its commune;
2. <polygon> / <circle> (WGS84) select the stations whose GPS position lies inside;
3. only when the area gives neither, <areaDesc> is read as commune/group names
   ("Xã Tam Dương, tỉnh Phú Thọ"), case, diacritics and the unit prefix ignored; a name no
   current unit has is looked up among former names ("Thị trấn Hợp Hòa" -> Xã Tam Dương).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Area, AreaGroupMember, Device
from controller.db.statuses import AreaLevel
from controller.services.cap.parse import CapArea

EARTH_RADIUS_KM = 6371.0088

# Unit prefixes (already folded: no diacritics, lower case), longest first, with the level
# they announce.
_PREFIXES: list[tuple[str, str | None]] = sorted([
    ("tinh", "province"), ("thanh pho", None), ("tp.", None), ("tp", None),
    ("huyen", "group"), ("quan", "group"), ("thi xa", "group"), ("khu vuc", "group"),
    ("xa", "commune"), ("phuong", "commune"), ("thi tran", "commune"), ("dac khu", "commune"),
    ("thon", "village"), ("ban", "village"), ("xom", "village"), ("ap", "village"),
    ("to dan pho", "village"),
], key=lambda p: -len(p[0]))  # fmt: skip
_SPLIT = re.compile(r"[,;\n/]|\s+-\s+|\s+(?:và|va|and)\s+", re.IGNORECASE)


@dataclass
class AreaMatch:
    communes: set[int] = field(default_factory=set)
    devices: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)  # how each part matched, for the record

    @property
    def empty(self) -> bool:
        return not (self.communes or self.devices)


# -- geometry ---------------------------------------------------------------------------------------------
def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def in_polygon(lat: float, lon: float, ring: list[tuple[float, float]]) -> bool:
    """Ray casting on (lon, lat) as plane coordinates: right for areas the size of a province
    (no pole, no antimeridian in Vietnam). Points on an edge may fall either way."""
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        yi, xi = ring[i]
        yj, xj = ring[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def in_circle(lat: float, lon: float, circle: tuple[float, float, float]) -> bool:
    clat, clon, radius_km = circle
    return haversine_km(lat, lon, clat, clon) <= radius_km


# -- names ------------------------------------------------------------------------------------------------
def fold(text: str) -> str:
    """Lower case, no diacritics (đ -> d), single spaces: how names are compared."""
    decomposed = unicodedata.normalize("NFD", text.casefold().replace("đ", "d"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.split())


def name_key(text: str) -> tuple[str, str | None]:
    """(folded name without its unit prefix, the level the prefix announces)."""
    folded = fold(text).strip(" .")
    for prefix, level in _PREFIXES:
        if folded.startswith(prefix + " ") or (prefix.endswith(".") and folded.startswith(prefix)):
            return folded[len(prefix):].strip(" ."), level
    return folded, None


def exact_key(text: str) -> str:
    """With diacritics kept (NFC, lower case): "Kim Long" and "Kìm Lông" stay different."""
    nfc = " ".join(unicodedata.normalize("NFC", text.casefold()).split()).strip(" .")
    folded, _ = name_key(text)
    words = nfc.split()
    return " ".join(words[len(words) - len(folded.split()):]) if folded else ""


@dataclass(frozen=True)
class _AreaRow:
    id: int
    level: str
    name: str
    parent_id: int | None


def normal_code(code: str) -> str:
    """Official codes compare without leading zeros ("08869" == "8869")."""
    code = code.strip()
    return str(int(code)) if code.isdigit() else code


class AreaIndex:
    """All administrative units, loaded once per alert (a province is a few hundred rows)."""

    def __init__(self, session: Session) -> None:
        rows = session.execute(
            select(Area.id, Area.level, Area.name, Area.parent_id, Area.code, Area.former_names)).all()
        self.areas = {r.id: _AreaRow(r.id, r.level, r.name, r.parent_id) for r in rows}
        # Codes are unique per level: the same digits may name a province and a commune.
        self.by_code: dict[str, list[int]] = {}
        for r in rows:
            if r.code:
                self.by_code.setdefault(normal_code(r.code), []).append(r.id)
        self.children: dict[int, list[int]] = {}
        for a in self.areas.values():
            if a.parent_id is not None:
                self.children.setdefault(a.parent_id, []).append(a.id)
        self.members: dict[int, set[int]] = {}
        pairs = session.execute(select(AreaGroupMember.group_id, AreaGroupMember.commune_id))
        for group_id, commune_id in pairs:
            self.members.setdefault(group_id, set()).add(commune_id)
        self.by_folded: dict[str, list[int]] = {}
        for a in self.areas.values():
            self.by_folded.setdefault(name_key(a.name)[0], []).append(a.id)
        # Former units ("Thị trấn Hợp Hòa (Huyện Tam Dương, Tỉnh Vĩnh Phúc)"): their own name only.
        self.by_former: dict[str, list[int]] = {}
        self.former_exact: dict[int, set[str]] = {}
        for r in rows:
            for former in r.former_names or []:
                own = former.split("(", 1)[0].split(",", 1)[0]
                self.by_former.setdefault(name_key(own)[0], []).append(r.id)
                self.former_exact.setdefault(r.id, set()).add(exact_key(own))

    def by_geocode(self, code: str, level: str | None) -> int | None:
        """The area with this official code (of `level` if the scheme says; otherwise a two-digit
        code is a province's, any longer one the lowest unit's: commune before group)."""
        found = self.by_code.get(normal_code(code), [])
        if level is not None:
            found = [i for i in found if self.areas[i].level == level]
        elif len(found) > 1:
            rank = ["province"] if len(code.strip()) <= 2 else ["commune", "village", "group", "province"]
            found = sorted(found, key=lambda i: rank.index(self.areas[i].level)
                           if self.areas[i].level in rank else len(rank))  # fmt: skip
        return found[0] if found else None

    def ancestors(self, area_id: int) -> list[int]:
        out: list[int] = []
        current = self.areas[area_id].parent_id
        while current is not None and current in self.areas and current not in out:
            out.append(current)
            current = self.areas[current].parent_id
        return out

    def containers(self, area_id: int) -> list[int]:
        """Its ancestors and the groups of communes it (or its commune) belongs to."""
        out = self.ancestors(area_id)
        communes = {a for a in [area_id, *out] if self.areas[a].level == AreaLevel.COMMUNE}
        out += [g for g, members in self.members.items() if members & communes and g not in out]
        return out

    def communes_of(self, area_id: int) -> set[int]:
        """Every commune an area covers: itself, those under it, or (a village) its commune."""
        area = self.areas[area_id]
        if area.level == AreaLevel.VILLAGE:
            return {a for a in self.ancestors(area_id) if self.areas[a].level == AreaLevel.COMMUNE}
        if area.level == AreaLevel.GROUP:
            return set(self.members.get(area_id, set()))
        found: set[int] = set()
        frontier = [area_id]
        while frontier:
            nxt: list[int] = []
            for a in frontier:
                if self.areas[a].level == AreaLevel.COMMUNE:
                    found.add(a)
                else:
                    nxt += self.children.get(a, [])
            frontier = nxt
        return found

    def by_name(self, part: str) -> list[int]:
        key, level = name_key(part)
        if not key:
            return []
        found = [i for i in self.by_folded.get(key, []) if level is None or self.areas[i].level == level]
        exact = [i for i in found if exact_key(self.areas[i].name) == exact_key(part)]
        if exact or found:
            return exact or found  # same letters with other tones only when nothing matches exactly
        # A unit merged away on 1 July 2025: its successor (the prefix may be the old one: "thị trấn").
        former = sorted(set(self.by_former.get(key, [])))
        exact = [i for i in former if exact_key(part) in self.former_exact.get(i, set())]
        return exact or former


def _scheme(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.casefold())


# Geocode schemes that say the level of the unit they name (besides the configured ones,
# which may name any level): "MA_XA" a commune, "MA_TINH" a province.
SCHEME_LEVELS = {"maxa": "commune", "maphuongxa": "commune", "matinh": "province"}


def _by_names(index: AreaIndex, desc: str, match: AreaMatch) -> None:
    parts = [p.strip() for p in _SPLIT.split(desc) if p and p.strip()]
    candidates = {p: index.by_name(p) for p in parts}
    unique = {c[0] for c in candidates.values() if len(c) == 1}
    chosen: set[int] = set(unique)
    for part, found in candidates.items():
        if len(found) > 1:  # "Xã Tân Lập" in two former districts: the other parts may say which one
            narrowed = [i for i in found if set(index.containers(i)) & unique]
            if len(narrowed) == 1:
                chosen.add(narrowed[0])
            else:
                match.notes.append(f"areaDesc ambiguous: {part!r}")
        elif not found:
            match.notes.append(f"areaDesc unknown: {part!r}")
    # "Xã Kim Long, huyện Tam Dương" is an address, not commune + whole group (former district).
    named_parents = {a for i in chosen for a in index.containers(i)}
    for area_id in sorted(chosen - named_parents):
        match.communes |= index.communes_of(area_id)
        match.notes.append(f"areaDesc {index.areas[area_id].name!r}")


def map_areas(
    session: Session, areas: list[CapArea], *, geocode_names: list[str], geocode_map: dict[str, str],
) -> AreaMatch:
    """Communes and stations the alert's areas cover (empty: the alert is not for us)."""
    index = AreaIndex(session)
    schemes = {_scheme(n) for n in geocode_names}
    mapped = {_scheme(k.split("=", 1)[0]) + "=" + k.split("=", 1)[1].strip(): v
              for k, v in geocode_map.items() if "=" in k}  # fmt: skip
    located: list[tuple[int, float, float]] | None = None
    match = AreaMatch()
    for area in areas:
        known_geocode = False
        for value_name, value in area.geocodes:
            code: str | None = None
            level = SCHEME_LEVELS.get(_scheme(value_name))
            if _scheme(value_name) in schemes:
                code = value.strip()
            elif f"{_scheme(value_name)}={value.strip()}" in mapped:
                code = mapped[f"{_scheme(value_name)}={value.strip()}"]
                level = None
            if code is None:
                continue
            known_geocode = True
            area_id = index.by_geocode(code, level)
            if area_id is None:
                match.notes.append(f"geocode {value_name}={value}: no such area here")
                continue
            match.communes |= index.communes_of(area_id)
            match.notes.append(f"geocode {value_name}={value} -> {index.areas[area_id].name!r}")
        if area.polygons or area.circles:
            if located is None:
                located = [(i, lat, lon) for i, lat, lon in session.execute(
                    select(Device.id, Device.lat, Device.lon).where(
                        Device.retired_at.is_(None), Device.lat.is_not(None), Device.lon.is_not(None)))]
            inside = {i for i, lat, lon in located
                      if any(in_polygon(lat, lon, ring) for ring in area.polygons)
                      or any(in_circle(lat, lon, c) for c in area.circles)}  # fmt: skip
            match.devices |= inside
            match.notes.append(f"polygon/circle of {area.desc[:80]!r}: {len(inside)} stations inside")
        elif not known_geocode:
            _by_names(index, area.desc, match)
    return match
