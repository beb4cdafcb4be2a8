"""Technician pages: create a station, its one-time enrollment code and QR, station health
(telemetry charts drawn as inline SVG on the server), diagnostics, and the alarm list.

Everything calls the services the API uses (`devices.create`, `enrollment.issue_code`,
`telemetry.query`, `alarms.engine`, `diagnostics` when present), with the panel's
permission and area checks in front.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from controller.core.errors import UserError
from controller.core.i18n import t
from controller.core.permissions import Action, can, can_act_on_area
from controller.db.models import Area, Device
from controller.db.statuses import DeviceKind
from controller.services import devices, enrollment
from controller.usecases import enrollment as enrolling
from controller.web.charts import Threshold, line_chart, number
from controller.web.i18n import gettext_for
from controller.web.pagekit import authorized_form, communes, page_ctx, to_int, user_error
from controller.web.panel import Ctx, Forbidden, redirect, render, runtime
from controller.web.vendor import map_assets, with_map_headers

router = APIRouter(include_in_schema=False)
CHARTS = (
    ("cpu_temp_c", "Nhiệt độ CPU", "°C"),
    ("cabinet_temp_c", "Nhiệt độ tủ", "°C"),
    ("mains_v", "Điện lưới", "V"),
    ("net_signal_dbm", "Sóng di động", "dBm"),
    ("clock_offset_ms", "Lệch đồng hồ", "ms"),
)
DIAGNOSTICS = {
    DeviceKind.SPEAKER: (
        ("test_tone", "Phát tiếng thử"),
        ("relay_click", "Bật/tắt rơ-le"),
        ("set_volume", "Đặt âm lượng"),
    ),
    DeviceKind.LED: (("led_test_pattern", "Hiện mẫu thử"),),
}
DIAG_STATES = {
    "pending": "Đang chờ trạm trả lời",
    "done": "Xong",
    "error": "Lỗi",
    "rejected": "Trạm từ chối",
    "expired": "Trạm không trả lời",
}
ACK_ACTIONS = (Action.DEVICE_MANAGE, Action.BROADCAST_SEND)  # as the API's ACK_ROLES


def _module(name: str) -> Any:
    """A service another feature provides, or None until it exists (the page leaves it out)."""
    try:
        return importlib.import_module(f"controller.services.{name}")
    except ImportError:
        return None


def _device_in_scope(ctx: Ctx, device: Device | None) -> bool:
    return device is not None and (ctx.scope is None or device.commune_id in ctx.scope)


# -- landing: create a station ---------------------------------------------------------------------------
@router.get("/ops", response_class=HTMLResponse)
def ops(request: Request) -> Response:
    ctx = page_ctx(request)
    if not (ctx.can(Action.DEVICE_MANAGE) or ctx.can(Action.DEVICE_TEST)):
        raise Forbidden()
    return _ops_page(request, ctx)


def _ops_page(
    request: Request, ctx: Ctx, *, status: int = 200, error: Any = None, form: dict[str, str] | None = None
) -> Response:
    with runtime(request).db.session() as s:
        q = (
            select(Device, Area.name)
            .join(Area, Area.id == Device.commune_id)
            .order_by(Device.id.desc())
            .limit(20)
        )
        if ctx.scope is not None:
            q = q.where(Device.commune_id.in_(ctx.scope or {-1}))
        recent = [(d, n) for d, n in s.execute(q)]
        for d, _n in recent:
            s.expunge(d)
        choices = communes(s, ctx.scope)
    return with_map_headers(request, render(
        request,
        "ops.html",
        status=status,
        ctx=ctx,
        recent=recent,
        communes=choices,
        error=error,
        form=form or {},
        **map_assets(request),
    ))


@router.post("/ops/stations", response_class=HTMLResponse)
async def create_station(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.DEVICE_MANAGE)
    values = {k: str(form.get(k, "")).strip() for k in ("name", "kind", "commune_id", "lat", "lon")}
    try:
        req = devices.DeviceCreate(
            name=values["name"],
            kind=values["kind"] or DeviceKind.SPEAKER,
            commune_id=to_int(values["commune_id"]) or -1,
            lat=float(values["lat"]) if values["lat"] else None,
            lon=float(values["lon"]) if values["lon"] else None,
        )
    except (ValidationError, ValueError):
        return _ops_page(
            request,
            ctx,
            status=422,
            form=values,
            error=("Hãy nhập tên trạm, chọn xã và nhập toạ độ hợp lệ (nếu có).", {}),
        )
    with rt.db.session() as s:
        if not can_act_on_area(s, ctx.user, Action.DEVICE_MANAGE, req.commune_id):
            raise Forbidden()
        try:  # the service checks role and area again (the same check as the API's)
            device = devices.create(s, req, ctx.user.id, actor=ctx.user)
            issued = _issue(rt, s, device.id, ctx)
        except UserError as exc:
            return _ops_page(request, ctx, status=exc.status, form=values, error=user_error(exc, ctx.lang))
        s.commit()
        device_id = device.id
    return _station_page(request, ctx, device_id, issued=issued)


def station_page(request: Request, ctx: Ctx, device_id: int, *, status: int, error: Any) -> Response:
    """The technician's station page with a refusal on it (the position form posts elsewhere)."""
    return _station_page(request, ctx, device_id, status=status, error=error)


def _issue(rt: Any, s: Any, device_id: int, ctx: Ctx) -> enrollment.IssuedCode:
    ttl = timedelta(hours=rt.settings.enrollment_code_ttl_hours)
    # The same use case as the API: the right to manage stations and the station's area.
    return enrolling.issue_code(s, ctx.user, device_id, pepper=enrollment.load_pepper(rt.enrollment_key_path),
                                ttl=ttl)


def _qr_svg(rt: Any, code: str) -> str:
    """The enroll command as an inline SVG QR (segno, pure Python): scanned from the screen or a label."""
    import segno

    from controller.api.routes.enrollment import qr_payload

    return str(segno.make(qr_payload(rt, code), error="m").svg_inline(scale=4, border=2))


# -- one station: health, enrollment, diagnostics ----------------------------------------------------------
def _station_page(
    request: Request,
    ctx: Ctx,
    device_id: int,
    *,
    issued: enrollment.IssuedCode | None = None,
    status: int = 200,
    error: Any = None,
) -> Response:
    rt = runtime(request)
    telemetry = _module("telemetry")
    alarms = _module("alarms.engine")
    now = datetime.now(UTC)
    with rt.db.session() as s:
        device = s.get(Device, device_id)
        if not _device_in_scope(ctx, device):
            return render(
                request,
                "error.html",
                status=404,
                ctx=ctx,
                message=("Không tìm thấy trạm {id}.", {"id": device_id}),
            )
        assert device is not None
        commune = s.get(Area, device.commune_id)
        charts = []
        thresholds = alarm_thresholds(rt.settings, gettext_for(ctx.lang)("Ngưỡng cảnh báo"))
        if telemetry is not None:
            for metric, title, unit in CHARTS:
                # Raw samples while they are kept (a new station has no rollups yet), else rollups.
                since = now - timedelta(hours=24)
                step = telemetry.choose_step("auto", since, now, rt.settings.telemetry_raw_days, now)
                series = telemetry.query(
                    s, device_id, metric, since, now, "raw" if rt.settings.telemetry_raw_days >= 1 else step
                )
                pts = [(datetime.fromisoformat(p["ts"]), p.get("value", p.get("avg"))) for p in series.points]
                if pts:
                    charts.append(line_chart(title, unit, pts, metric=metric, lang=ctx.lang,
                                             thresholds=thresholds.get(metric, ()), tz=rt.settings.timezone))
        station_alarms = (
            alarms.list_alarms(s, state="active", device_id=device_id, kind=None, limit=50) if alarms else []
        )
        diag = _module("diagnostics")
        diag_rows = [diag.to_json(r) for r in diag.recent(s, ctx.user, device_id, 5)] if diag else []
        s.expunge(device)
    command = qr = ""
    if issued is not None:
        from controller.api.routes.enrollment import qr_payload

        command, qr = qr_payload(rt, issued.code), _qr_svg(rt, issued.code)
    return with_map_headers(request, render(
        request,
        "ops_station.html",
        status=status,
        ctx=ctx,
        device=device,
        commune=commune,
        charts=charts,
        issued=issued,
        command=command,
        qr=qr,
        error=error,
        expires=enrollment.people_time(issued.expires_at, rt.settings.timezone) if issued else "",
        diagnostics=DIAGNOSTICS.get(device.kind, ()) if diag is not None else (),
        diag_rows=diag_rows,
        diag_states=DIAG_STATES,
        diag_names=dict(DIAGNOSTICS[DeviceKind.SPEAKER] + DIAGNOSTICS[DeviceKind.LED]),
        alarms=station_alarms,
        alarm_kind=lambda k: t(f"alarm.kind.{k}", ctx.lang),
        may_ack=any(ctx.can(a) for a in ACK_ACTIONS),
        parse_iso=datetime.fromisoformat,
        number=lambda v: number(v, ctx.lang),
        **map_assets(request),
    ))


def alarm_thresholds(settings: Any, label: str) -> dict[str, tuple[Threshold, ...]]:
    """The lines a chart draws: each threshold rule's opening value (both signs when it compares |value|)."""
    from controller.services.alarms.rules import ThresholdRule, telemetry_rules

    out: dict[str, tuple[Threshold, ...]] = {}
    for rule in telemetry_rules(settings):
        if isinstance(rule, ThresholdRule):
            values = (rule.open_at, -rule.open_at) if rule.absolute else (rule.open_at,)
            out[rule.metric] = tuple(Threshold(v, label) for v in values)
    return out


@router.get("/ops/stations/{device_id}", response_class=HTMLResponse)
def station(request: Request, device_id: int) -> Response:
    return _station_page(request, page_ctx(request), device_id)


@router.get("/ops/stations/{device_id}/state.json")
def station_state(request: Request, device_id: int) -> Response:
    """What the technician's page polls while the agent enrolls and connects."""
    ctx = page_ctx(request)
    with runtime(request).db.session() as s:
        device = s.get(Device, device_id)
        if not _device_in_scope(ctx, device):
            return JSONResponse({"detail": "not found"}, status_code=404)
        assert device is not None
        playing = bool(((device.reported or {}).get("playback") or {}).get("item_id"))
        body = {
            "online": device.online,
            "playing": playing,
            "last_seen": device.last_seen.isoformat() if device.last_seen else None,
        }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/ops/stations/{device_id}/code", response_class=HTMLResponse)
async def new_code(request: Request, device_id: int) -> Response:
    rt, _form, ctx = await authorized_form(request, Action.DEVICE_MANAGE)
    with rt.db.session() as s:
        device = s.get(Device, device_id)
        if device is None or not can_act_on_area(s, ctx.user, Action.DEVICE_MANAGE, device.commune_id):
            raise Forbidden()
        try:
            issued = _issue(rt, s, device_id, ctx)
        except UserError as exc:
            return _station_page(request, ctx, device_id, status=exc.status, error=user_error(exc, ctx.lang))
        s.commit()
    return _station_page(request, ctx, device_id, issued=issued)


@router.post("/ops/stations/{device_id}/diagnostics", response_class=HTMLResponse)
async def run_diagnostic(request: Request, device_id: int) -> Response:
    rt, form, ctx = await authorized_form(request, Action.DEVICE_TEST)
    diag = _module("diagnostics")
    if diag is None:
        raise Forbidden()
    test = str(form.get("test", ""))
    if test not in {k for pairs in DIAGNOSTICS.values() for k, _n in pairs}:
        return _station_page(request, ctx, device_id, status=422, error=("Không có phép kiểm tra này.", {}))
    params: dict[str, Any] = {}
    if test == "set_volume":
        params["volume"] = max(0, min(100, to_int(form.get("volume")) or 0))
    with rt.db.session() as s:
        device = s.get(Device, device_id)
        if device is None or not can_act_on_area(s, ctx.user, Action.DEVICE_TEST, device.commune_id):
            raise Forbidden()
        try:  # the service checks role and area again, signs, records, publishes
            await diag.send(rt, s, ctx.user, device_id, diag.DiagnosticRequest(action=test, params=params))
        except UserError as exc:
            return _station_page(request, ctx, device_id, status=exc.status, error=user_error(exc, ctx.lang))
    return redirect(f"/ops/stations/{device_id}?ok=diag_sent")


# -- alarms ------------------------------------------------------------------------------------------
@router.get("/alarms", response_class=HTMLResponse)
def alarm_list(request: Request, state: str = "active") -> Response:
    ctx = page_ctx(request)
    engine = _module("alarms.engine")
    rows: list[dict[str, Any]] = []
    if engine is not None:
        state = state if state in ("active", "open", "acknowledged", "resolved") else "active"
        with runtime(request).db.session() as s:
            rows = engine.list_alarms(s, state=state, device_id=None, kind=None, limit=2000)
            if ctx.scope is not None and rows:
                ids = {r["device_id"] for r in rows}
                mine = set(
                    s.scalars(
                        select(Device.id).where(Device.id.in_(ids), Device.commune_id.in_(ctx.scope or {-1}))
                    )
                )
                rows = [r for r in rows if r["device_id"] in mine]
    return render(
        request,
        "alarms.html",
        ctx=ctx,
        rows=rows[:300],
        state=state,
        available=engine is not None,
        alarm_kind=lambda k: t(f"alarm.kind.{k}", ctx.lang),
        parse=datetime.fromisoformat,
        may_ack=any(ctx.can(a) for a in ACK_ACTIONS),
        parse_iso=datetime.fromisoformat,
    )


@router.post("/alarms/{alarm_id}/ack", response_class=HTMLResponse)
async def alarm_ack(request: Request, alarm_id: int) -> Response:
    rt = runtime(request)
    _rt, form, ctx = await authorized_form(request, Action.VIEW)
    if not any(can(ctx.user, a) for a in ACK_ACTIONS):
        raise Forbidden()
    engine = _module("alarms.engine")
    if engine is None:
        raise Forbidden()
    back = "/alarms"
    with rt.db.session() as s:
        from controller.db.models_health import Alarm

        alarm = s.get(Alarm, alarm_id)
        device = s.get(Device, alarm.device_id) if alarm else None
        if device is None or not _device_in_scope(ctx, device):
            raise Forbidden()
        if str(form.get("back", "")).startswith("/ops/stations/"):
            back = f"/ops/stations/{device.id}"
        try:
            _alarm, note = engine.acknowledge(
                s, alarm_id, ctx.user, str(form.get("note", "")).strip() or None
            )
            s.commit()
        except UserError as exc:
            return render(
                request, "error.html", status=exc.status, ctx=ctx, message=user_error(exc, ctx.lang)
            )
    if note is not None and getattr(rt, "notifications", None) is not None:
        rt.notifications.publish([note])
    return redirect(f"{back}?ok=alarm_acked")
