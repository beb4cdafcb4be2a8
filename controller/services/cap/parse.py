"""A validated CAP 1.2 alert turned into plain dataclasses (the fields we act on)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from controller.core.errors import UserError
from controller.services.cap.validate import CAP_NS, validated_tree

NS = {"c": CAP_NS}
MAX_RADIUS_KM = 20_000.0


@dataclass(frozen=True)
class Reference:
    sender: str
    identifier: str
    sent: str


@dataclass
class CapArea:
    desc: str
    polygons: list[list[tuple[float, float]]] = field(default_factory=list)  # (lat, lon) rings
    circles: list[tuple[float, float, float]] = field(default_factory=list)  # lat, lon, radius km
    geocodes: list[tuple[str, str]] = field(default_factory=list)  # (valueName, value)


@dataclass
class CapInfo:
    language: str
    categories: list[str]
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    sender_name: str | None = None
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    areas: list[CapArea] = field(default_factory=list)


@dataclass
class CapAlert:
    identifier: str
    sender: str
    sent: str  # as written: references name alerts by this exact string
    sent_at: datetime
    status: str
    msg_type: str
    scope: str
    source: str | None = None
    note: str | None = None
    references: list[Reference] = field(default_factory=list)
    infos: list[CapInfo] = field(default_factory=list)


def _text(el: etree._Element, name: str) -> str | None:
    found = el.find(f"c:{name}", NS)
    if found is None or found.text is None:
        return None
    value = " ".join(found.text.split())
    return value or None


def _req(el: etree._Element, name: str) -> str:
    return _text(el, name) or ""  # the schema already made sure it is there


def _time(el: etree._Element, name: str) -> datetime | None:
    value = _text(el, name)
    return datetime.fromisoformat(value) if value else None


def parse_polygon(value: str, area: str) -> list[tuple[float, float]]:
    """CAP polygon: space-separated "lat,lon" pairs, at least 4, first == last (spec 3.3.3)."""
    try:
        points = [(float(lat), float(lon)) for lat, lon in (p.split(",") for p in value.split())]
    except ValueError as exc:
        raise UserError(422, "cap.bad_polygon", area=area, value=value[:200]) from exc
    if len(points) < 4 or points[0] != points[-1] or not all(_on_earth(*p) for p in points):
        raise UserError(422, "cap.bad_polygon", area=area, value=value[:200])
    return points


def parse_circle(value: str, area: str) -> tuple[float, float, float]:
    """CAP circle: "lat,lon radius" with the radius in kilometres."""
    try:
        centre, radius_s = value.split()
        lat_s, lon_s = centre.split(",")
        lat, lon, radius = float(lat_s), float(lon_s), float(radius_s)
    except ValueError as exc:
        raise UserError(422, "cap.bad_circle", area=area, value=value[:200]) from exc
    if not _on_earth(lat, lon) or not 0 <= radius <= MAX_RADIUS_KM:
        raise UserError(422, "cap.bad_circle", area=area, value=value[:200])
    return lat, lon, radius


def _on_earth(lat: float, lon: float) -> bool:
    return -90 <= lat <= 90 and -180 <= lon <= 180


def parse_references(value: str | None) -> list[Reference]:
    """`sender,identifier,sent` entries separated by whitespace (spec 3.2.1)."""
    refs = []
    for entry in (value or "").split():
        parts = entry.split(",")
        if len(parts) != 3 or not all(parts):
            raise UserError(422, "cap.bad_references", value=(value or "")[:300])
        refs.append(Reference(*parts))
    return refs


def _area(el: etree._Element) -> CapArea:
    desc = _req(el, "areaDesc")
    area = CapArea(desc=desc)
    for p in el.findall("c:polygon", NS):
        area.polygons.append(parse_polygon(p.text or "", desc))
    for c in el.findall("c:circle", NS):
        area.circles.append(parse_circle(c.text or "", desc))
    for g in el.findall("c:geocode", NS):
        area.geocodes.append((_req(g, "valueName"), _req(g, "value")))
    return area


def _info(el: etree._Element) -> CapInfo:
    return CapInfo(
        language=_text(el, "language") or "en-US",  # the schema's default
        categories=[" ".join((c.text or "").split()) for c in el.findall("c:category", NS)],
        event=_req(el, "event"),
        urgency=_req(el, "urgency"),
        severity=_req(el, "severity"),
        certainty=_req(el, "certainty"),
        headline=_text(el, "headline"),
        description=_text(el, "description"),
        instruction=_text(el, "instruction"),
        sender_name=_text(el, "senderName"),
        effective=_time(el, "effective"),
        onset=_time(el, "onset"),
        expires=_time(el, "expires"),
        areas=[_area(a) for a in el.findall("c:area", NS)],
    )


def parse_alert(raw: bytes) -> CapAlert:
    """Safety check, XSD validation, then the fields; any problem is a UserError (4xx)."""
    root = validated_tree(raw)
    sent = _req(root, "sent")
    return CapAlert(
        identifier=_req(root, "identifier"),
        sender=_req(root, "sender"),
        sent=sent,
        sent_at=datetime.fromisoformat(sent),
        status=_req(root, "status"),
        msg_type=_req(root, "msgType"),
        scope=_req(root, "scope"),
        source=_text(root, "source"),
        note=_text(root, "note"),
        references=parse_references(_text(root, "references")),
        infos=[_info(i) for i in root.findall("c:info", NS)],
    )
