"""Emergency presets (issue 20 item 8): a province's ready texts for storm, flood, flash flood and
landslide, fire, epidemic and the all-clear, so an operator fills the emergency form in one tap.

Who sees what: a province's presets are visible to every user whose area lies in that province
(the emergency form, the presets page); an unscoped user (admin) sees any province's and the
installation-wide defaults. Who edits: `policy.edit` (admin, province operators) for a province
they cover; the installation-wide defaults only an unscoped admin. A group or commune operator,
an approver, a technician and a viewer read but never write; another province's operator gets a
404 for reads (its existence is not revealed) and 403 for writes.

A preset is looked up as: the province's own row, else the installation-wide row (area NULL),
else the built-in default below: the defaults need no seeding and a province edits only what it
wants to change.

The panel (`web/routes_presets.py`) and the API (`api/routes/presets.py`, `/api/v1/emergency-presets`)
call these same functions: `entries`/`presets` to read, `save` (the panel's form; the API's PATCH
through `update`), `create` (a province's own version of a key, 409 if it has one) and `reset`
(delete the province's version: the installation-wide or built-in text is offered again; the
panel's "Về mẫu mặc định" through `reset_key`).
A stored row of another province is not found (404), as a read of that province is.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, area_chain, can, covers, require_area_action
from controller.db.models import Area, User
from controller.db.models_alerts import EmergencyPreset
from controller.db.statuses import AreaLevel
from controller.services import audit
from controller.services.tts import VOICES


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    title: str
    text: str
    led_text: str
    voice: str = "vi-north"
    repeat_hours: int | None = None  # None: once; n: every n hours until cancelled


DEFAULTS: tuple[Preset, ...] = (
    Preset("storm", "Bão", "Cảnh báo bão",
           "Thông báo khẩn: Bão đang tiến gần địa phương. Đề nghị bà con chằng chống nhà cửa, neo đậu "
           "tàu thuyền nơi an toàn, không ra khơi, hạn chế đi lại khi mưa gió lớn; chuẩn bị lương thực, "
           "nước uống, đèn pin và sẵn sàng sơ tán khi có lệnh của chính quyền.",
           "CẢNH BÁO BÃO - CHẰNG CHỐNG NHÀ CỬA, KHÔNG RA KHƠI", repeat_hours=2),
    Preset("flood", "Lũ", "Cảnh báo lũ",
           "Thông báo khẩn: Mực nước sông đang lên nhanh, có nguy cơ ngập lụt. Đề nghị bà con kê cao đồ "
           "đạc, đưa người già, trẻ em và gia súc đến nơi cao ráo; không qua lại ngầm, tràn, suối khi nước "
           "chảy xiết; theo dõi loa truyền thanh và làm theo hướng dẫn của chính quyền.",
           "CẢNH BÁO LŨ - ĐẾN NƠI CAO, KHÔNG QUA NGẦM TRÀN", repeat_hours=2),
    Preset("flash_flood", "Lũ quét, sạt lở đất", "Cảnh báo lũ quét, sạt lở đất",
           "Thông báo khẩn: Mưa lớn kéo dài, nguy cơ rất cao xảy ra lũ quét và sạt lở đất. Các hộ ở ven "
           "sông suối, chân đồi, sườn núi phải khẩn trương sơ tán đến nơi an toàn ngay; không ở lại nhà "
           "khi thấy nước suối đục, có tiếng động lạ hoặc vết nứt trên đất.",
           "NGUY CƠ LŨ QUÉT, SẠT LỞ ĐẤT - SƠ TÁN NGAY", repeat_hours=1),
    Preset("fire", "Cháy", "Cảnh báo cháy",
           "Thông báo khẩn: Đang xảy ra cháy trên địa bàn. Đề nghị bà con tránh xa khu vực cháy, nhường "
           "đường cho xe chữa cháy, ngắt điện và khoá bình gas nếu ở gần; gọi 114 khi phát hiện đám cháy.",
           "ĐANG CÓ CHÁY - TRÁNH XA KHU VỰC, GỌI 114"),
    Preset("epidemic", "Dịch bệnh", "Thông báo phòng chống dịch bệnh",
           "Thông báo: Trên địa bàn đã ghi nhận ca bệnh truyền nhiễm. Đề nghị bà con rửa tay thường xuyên "
           "bằng xà phòng, đeo khẩu trang nơi đông người, ăn chín uống sôi, vệ sinh nhà cửa; khi sốt, ho, "
           "khó thở hãy đến trạm y tế xã để được khám và hướng dẫn.",
           "PHÒNG CHỐNG DỊCH - SỐT, HO HÃY ĐẾN TRẠM Y TẾ", repeat_hours=6),
    Preset("all_clear", "Hết cảnh báo", "Hết cảnh báo",
           "Thông báo: Tình huống khẩn cấp đã qua, chính quyền thông báo kết thúc cảnh báo. Bà con trở lại "
           "sinh hoạt bình thường và tiếp tục theo dõi thông tin trên loa truyền thanh.",
           "ĐÃ HẾT CẢNH BÁO - TRỞ LẠI SINH HOẠT BÌNH THƯỜNG"),
)  # fmt: skip
KEYS = tuple(p.key for p in DEFAULTS)


def province_of(session: Session, area_id: int | None) -> int | None:
    """The province an area lies in (itself for a province); None for no area."""
    if area_id is None:
        return None
    chain = area_chain(session, area_id)
    levels = dict(session.execute(select(Area.id, Area.level).where(Area.id.in_(chain))).all())
    return next((a for a in chain if levels.get(a) == AreaLevel.PROVINCE), None)


def unscoped(user: User) -> bool:
    return user.role == "admin" or user.area_id is None


def visible_province(session: Session, user: User, province_id: int | None) -> int | None:
    """The province whose presets the user sees: their own; an unscoped user the one asked for
    (None: the installation-wide defaults). Another province: 404, as if it did not exist."""
    if unscoped(user):
        if province_id is not None:
            area = session.get(Area, province_id)
            if area is None or area.level != AreaLevel.PROVINCE:
                raise NotFound("preset.province_not_found", id=province_id)
        return province_id
    own = province_of(session, user.area_id)
    if province_id is not None and province_id != own:
        raise NotFound("preset.province_not_found", id=province_id)
    return own


def _rows(session: Session, province_id: int | None) -> dict[tuple[int | None, str], EmergencyPreset]:
    areas = [province_id] if province_id is not None else []
    cond = EmergencyPreset.area_id.is_(None)
    if areas:
        cond = cond | EmergencyPreset.area_id.in_(areas)
    return {(r.area_id, r.key): r for r in session.scalars(select(EmergencyPreset).where(cond))}


def _view(row: EmergencyPreset) -> Preset:
    return Preset(row.key, row.label, row.title, row.text, row.led_text, row.voice, row.repeat_hours)


@dataclass(frozen=True)
class Entry:
    """One preset as offered, with where its text comes from: `province` (that province's own row),
    `installation` (the installation-wide row) or `builtin` (DEFAULTS); `id` is the stored row's."""

    preset: Preset
    source: str
    id: int | None = None
    area_id: int | None = None


def entries(session: Session, user: User, province_id: int | None = None) -> tuple[int | None, list[Entry]]:
    """The province whose presets the user sees (`visible_province`) and its presets in order."""
    if not can(user, Action.VIEW):
        raise UserError(403, "auth.forbidden")
    province = visible_province(session, user, province_id)
    rows = _rows(session, province)
    out = []
    for default in DEFAULTS:
        row = rows.get((province, default.key)) if province is not None else None
        if row is not None:
            out.append(Entry(_view(row), "province", row.id, row.area_id))
        elif (row := rows.get((None, default.key))) is not None:
            out.append(Entry(_view(row), "installation", row.id, None))
        else:
            out.append(Entry(default, "builtin"))
    return province, out


def presets(session: Session, user: User, province_id: int | None = None) -> list[Preset]:
    """The presets the user's emergency form offers (their province's, else the defaults)."""
    return [e.preset for e in entries(session, user, province_id)[1]]


def may_edit(session: Session, user: User, province_id: int | None) -> bool:
    """The page's question (what `save` enforces): policy.edit, and the province in the user's area."""
    if not can(user, Action.POLICY_EDIT):
        return False
    return unscoped(user) if province_id is None else covers(session, user, province_id)


def _checked(values: Preset) -> Preset:
    label, title = values.label.strip(), values.title.strip()
    text, led_text = values.text.strip(), " ".join(values.led_text.split())
    if not (
        1 <= len(label) <= 60
        and 1 <= len(title) <= 300
        and 1 <= len(text) <= 1000
        and 1 <= len(led_text) <= 200
    ):
        raise UserError(422, "preset.bad_fields")
    if values.voice not in VOICES:
        raise UserError(422, "preset.bad_voice", voice=values.voice[:32])
    if values.repeat_hours is not None and not 1 <= values.repeat_hours <= 24:
        raise UserError(422, "preset.bad_repeat")
    return Preset(values.key, label, title, text, led_text, values.voice, values.repeat_hours)


def _require_edit(session: Session, user: User, province_id: int | None) -> None:
    """403 unless the user may edit the presets of `province_id` (None: the installation-wide ones);
    404 for an id that is not a province."""
    if province_id is None:
        if not can(user, Action.POLICY_EDIT) or not unscoped(user):
            raise UserError(403, "auth.forbidden")
    else:
        area = session.get(Area, province_id)
        if area is None or area.level != AreaLevel.PROVINCE:
            raise NotFound("preset.province_not_found", id=province_id)
        require_area_action(session, user, Action.POLICY_EDIT, province_id)


def _row(session: Session, province_id: int | None, key: str) -> EmergencyPreset | None:
    return session.scalar(
        select(EmergencyPreset).where(
            EmergencyPreset.key == key,
            EmergencyPreset.area_id.is_(None)
            if province_id is None
            else EmergencyPreset.area_id == province_id,
        )
    )


def save(session: Session, user: User, province_id: int | None, values: Preset) -> Preset:
    """Store the province's version of one preset (the installation-wide one for province None)."""
    if values.key not in KEYS:
        raise NotFound("preset.not_found", key=values.key[:32])
    _require_edit(session, user, province_id)
    v = _checked(values)
    row = _row(session, province_id, v.key)
    if row is None:
        row = EmergencyPreset(area_id=province_id, key=v.key, position=KEYS.index(v.key))
        session.add(row)
    row.label, row.title, row.text, row.led_text = v.label, v.title, v.text, v.led_text
    row.voice, row.repeat_hours, row.updated_by = v.voice, v.repeat_hours, user.id
    session.flush()
    audit.record(session, user.id, "emergency.preset", "area", province_id, key=v.key)
    return v


def default_province(session: Session, user: User) -> int | None:
    """Where a new preset goes when none is named: the user's province; an unscoped user's
    installation-wide set."""
    return None if unscoped(user) else province_of(session, user.area_id)


def create(session: Session, user: User, province_id: int | None, values: Preset) -> EmergencyPreset:
    """A province's own version of one preset key (409 if it has one already: change that one)."""
    if values.key not in KEYS:
        raise UserError(422, "preset.unknown_key", key=values.key[:32], allowed=", ".join(KEYS))
    _require_edit(session, user, province_id)
    if _row(session, province_id, values.key) is not None:
        raise UserError(409, "preset.exists", key=values.key)
    save(session, user, province_id, values)
    row = _row(session, province_id, values.key)
    assert row is not None
    return row


def stored(session: Session, user: User, preset_id: int) -> EmergencyPreset:
    """A stored preset the user may see (their province's, or the installation-wide one), else 404."""
    if not can(user, Action.VIEW):
        raise UserError(403, "auth.forbidden")
    row = session.get(EmergencyPreset, preset_id)
    if row is None or not (
        unscoped(user) or row.area_id is None or row.area_id == province_of(session, user.area_id)
    ):
        raise NotFound("preset.id_not_found", id=preset_id)
    return row


def update(session: Session, user: User, preset_id: int, changes: dict[str, object]) -> EmergencyPreset:
    """Change some fields of a stored preset (`changes`: label, title, text, led_text, voice,
    repeat_hours), with `save`'s rights and checks."""
    row = stored(session, user, preset_id)
    values = _view(row)
    texts = ("label", "title", "text", "led_text", "voice")  # null keeps the value; repeat null: once
    fields = {k: v for k, v in changes.items() if (k in texts and v is not None) or k == "repeat_hours"}
    save(session, user, row.area_id, Preset(**{**values.__dict__, **fields}))  # type: ignore[arg-type]
    return row


def reset(session: Session, user: User, preset_id: int) -> EmergencyPreset:
    """Delete a stored preset: the province offers the installation-wide (or built-in) text again."""
    row = stored(session, user, preset_id)
    _require_edit(session, user, row.area_id)
    session.delete(row)
    session.flush()
    audit.record(session, user.id, "emergency.preset_reset", "area", row.area_id, key=row.key)
    return row


def reset_key(session: Session, user: User, province_id: int | None, key: str) -> None:
    """The panel's "Về mẫu mặc định": `reset` of the province's stored version of `key` (none: 404)."""
    if key not in KEYS:
        raise NotFound("preset.not_found", key=key[:32])
    _require_edit(session, user, province_id)
    row = _row(session, province_id, key)
    if row is None:
        raise NotFound("preset.not_found", key=key)
    reset(session, user, row.id)
