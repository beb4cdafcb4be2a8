"""Targets picked by name (issue 20, item 6) for the bulletin and emergency send forms.

An operator types part of a name ("tam duong": diacritics, đ/Đ and case ignored; a former name
or an official code works too) and ticks communes, groups of communes or stations from the
results; what is ticked stays as checked chips (`pick` = "commune:12", "group:3", "station:45").
Nobody types station codes. Without JavaScript the search is a form post that re-renders the
page with everything typed so far kept; static/target-picker.js asks `/panel/targets.json`
while typing instead. Only what lies in the caller's area is ever offered, and a crafted pick
outside it is refused (403) when the form is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.permissions import all_in_scope
from controller.db.models import Area, Device
from controller.db.statuses import AreaLevel
from controller.services.areas import fold, matches
from controller.services.targets import Targets, group_members
from controller.web import queries
from controller.web.panel import Ctx, Forbidden

KINDS = ("commune", "group", "station")
KIND_LABELS = {"commune": "Xã", "group": "Cụm xã", "station": "Trạm"}  # Vietnamese msgids
MAX_RESULTS = 30
MAX_PICKS = 200


@dataclass(frozen=True)
class Choice:
    key: str  # "commune:12"
    kind: str
    label: str


@dataclass
class Picker:
    q: str = ""
    picked: list[Choice] = field(default_factory=list)
    results: list[Choice] = field(default_factory=list)

    @property
    def picked_keys(self) -> set[str]:
        return {c.key for c in self.picked}


def _parse(value: str) -> tuple[str, int] | None:
    kind, _sep, ident = value.partition(":")
    if kind not in KINDS or not ident.isdigit() or len(ident) > 12:
        return None
    return (kind, int(ident)) if int(ident) > 0 else None


def search(s: Session, ctx: Ctx, q: str, *, stations: bool = True) -> list[Choice]:
    """Communes, groups and (speaker) stations of the caller's area whose name holds `q` (folded);
    with an empty `q` the caller's communes and groups, so a small area needs no typing."""
    folded = fold(q.strip())[:100]
    out: list[Choice] = []
    communes = s.scalars(select(Area).where(Area.level == AreaLevel.COMMUNE))
    labels = dict(queries.communes(s, ctx.scope))
    for area in communes:
        if area.id in labels and matches(area, folded):
            out.append(Choice(f"commune:{area.id}", "commune", labels[area.id]))
    for gid, name in queries.groups(s, ctx.scope):
        area = s.get(Area, gid)
        if area is not None and matches(area, folded):
            out.append(Choice(f"group:{gid}", "group", name))
    if stations and folded:
        q_st = (select(Device.id, Device.name, Area.name).join(Area, Area.id == Device.commune_id)
                .where(Device.retired_at.is_(None), Device.kind == "speaker"))
        if ctx.scope is not None:
            q_st = q_st.where(Device.commune_id.in_(ctx.scope or {-1}))
        for i, name, commune in s.execute(q_st.order_by(Device.id)):
            if folded in fold(name):
                out.append(Choice(f"station:{i}", "station", f"{name} · {commune}"))
                if len(out) >= MAX_RESULTS * 2:
                    break
    out.sort(key=lambda c: (KINDS.index(c.kind), c.label))
    return out[:MAX_RESULTS]


def picked(s: Session, ctx: Ctx, values: list[str]) -> list[Choice]:
    """The ticked choices with their labels from the database; one outside the area: 403."""
    parsed = [p for p in (_parse(v) for v in dict.fromkeys(values[:MAX_PICKS])) if p]
    ids = {kind: [i for k, i in parsed if k == kind] for kind in KINDS}
    communes_of: list[int] = list(ids["commune"]) + list(group_members(s, ids["group"]))
    rows = list(s.execute(select(Device.id, Device.name, Device.commune_id, Area.name)
                          .join(Area, Area.id == Device.commune_id)
                          .where(Device.id.in_(ids["station"]), Device.retired_at.is_(None))))
    communes_of += [c for _i, _n, c, _a in rows]
    if not all_in_scope(s, ctx.user, communes_of):
        raise Forbidden()
    labels = dict(queries.communes(s, ctx.scope))
    groups = dict(queries.groups(s, ctx.scope))
    out = [Choice(f"commune:{i}", "commune", labels[i]) for i in ids["commune"] if i in labels]
    out += [Choice(f"group:{i}", "group", groups[i]) for i in ids["group"] if i in groups]
    out += [Choice(f"station:{i}", "station", f"{n} · {a}") for i, n, _c, a in rows]
    return out


def to_targets(choices: list[Choice]) -> Targets:
    """The union of what was picked; ValueError when nothing was."""
    ids = {kind: [int(c.key.split(":")[1]) for c in choices if c.kind == kind] for kind in KINDS}
    if not any(ids.values()):
        raise ValueError("nothing picked")
    return Targets(communes=ids["commune"], groups=ids["group"], devices=ids["station"])


def picker(s: Session, ctx: Ctx, form: Any | None, *, stations: bool = True) -> Picker:
    """The picker's state for a page: what is ticked in `form` (a posted form, or a dict with a
    "pick" list) and the results for its `target_q`."""
    form = form or {}
    q = str(form.get("target_q", "") or "")
    ticks = form.getlist("pick") if hasattr(form, "getlist") else list(form.get("pick") or [])
    chosen = picked(s, ctx, [str(v) for v in ticks])
    keys = {c.key for c in chosen}
    results = [c for c in search(s, ctx, q, stations=stations) if c.key not in keys]
    return Picker(q[:100], chosen, results)


def as_json(choices: list[Choice]) -> list[dict[str, str]]:
    return [{"key": c.key, "kind": c.kind, "label": c.label} for c in choices]
