"""Panel pages: the bulletin library (upload), sending a bulletin, the approval queue and the play log."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select

from controller.core.errors import NotFound, UserError
from controller.core.i18n import t
from controller.core.permissions import Action, all_in_scope, in_scope
from controller.db.models import Broadcast, Delivery, Device, Media, PlayLog, User
from controller.db.statuses import BroadcastStatus
from controller.services import audit, broadcasts
from controller.services.media import record_media
from controller.services.targets import Targets, group_members
from controller.usecases import broadcasts as sending
from controller.web import queries, target_picker
from controller.web.lateness import late_stations
from controller.web.pagekit import BAD_DATETIME, authorized_form, parse_local, to_int
from controller.web.panel import (
    Ctx,
    Forbidden,
    current,
    redirect,
    render,
    runtime,
)

router = APIRouter(include_in_schema=False)


# ---- bulletins: upload, send, play log ----------------------------------------------------


def _bulletins_page(request: Request, ctx: Ctx, *, status: int = 200, error: Any = None,
                    selected: str | None = None, form: dict[str, Any] | None = None,
                    posted: Any = None) -> Response:
    rt = runtime(request)
    with rt.db.session() as s:
        picker = target_picker.picker(s, ctx, posted)  # the send form's targets by name
        media = list(s.scalars(select(Media).order_by(Media.created_at.desc()).limit(30)))
        recent_q = select(Broadcast).order_by(Broadcast.created_at.desc()).limit(15)
        if ctx.scope is not None:
            recent_q = recent_q.where(Broadcast.id.in_(queries.broadcasts_in_scope(ctx.scope)))
        recent = list(s.scalars(recent_q))
        communes = queries.communes(s, ctx.scope)
        groups = queries.groups(s, ctx.scope)
    selected = selected or (media[0].sha256 if media else None)
    chosen = next((m for m in media if m.sha256 == selected), None)
    # The audio pipeline's notes on the chosen file (too quiet, clipped, ...), in the page's language.
    notes = [t(w["code"], ctx.lang, **(w.get("params") or {}))
             for w in (getattr(chosen, "warnings", None) or []) if w.get("code")]
    return render(request, "bulletins.html", status=status, ctx=ctx, media=media, recent=recent,
                  communes=communes, groups=groups, error=error, selected=selected, notes=notes,
                  form=form or {}, picker=picker, picker_action="/bulletins/pick",
                  picker_kinds=target_picker.KIND_LABELS)


@router.get("/bulletins", response_class=HTMLResponse)
def bulletins(request: Request, media: str | None = None) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
    return _bulletins_page(request, ctx, selected=media)


@router.post("/bulletins/upload", response_class=HTMLResponse)
async def upload(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.MEDIA_UPLOAD)
    upload_file = form.get("file")
    if upload_file is None or isinstance(upload_file, str) or not upload_file.filename:
        return _bulletins_page(request, ctx, status=422, error=("Hãy chọn một tệp âm thanh.", {}))
    name = upload_file.filename or "upload"
    try:
        stored = await run_in_threadpool(rt.media.ingest, upload_file.file, name)
    except UserError as exc:
        message = t(exc.key, ctx.lang, **exc.params)
        return _bulletins_page(request, ctx, status=exc.status, error=(message, {}))
    with rt.db.session() as s:
        is_new = s.get(Media, stored.sha256) is None
        record_media(s, stored, name, ctx.user.id)  # the same row the API's upload writes
        if is_new:
            audit.record(s, ctx.user.id, "media.upload", "media", stored.sha256, name=name)
    return redirect(f"/bulletins?media={stored.sha256}&ok=uploaded")


def form_targets(s: Any, ctx: Ctx, form: Any) -> Targets:
    """The targets of a send form (all of the caller's area, communes, groups of communes or
    stations), each checked against the caller's area: the bulletin and live-relay pages share it."""
    mode = str(form.get("target", ""))
    if mode == "all":
        if form.getlist("pick"):  # "all" and some places ticked: ask rather than guess
            raise ValueError("all and picks")
        if ctx.scope is None:
            return Targets(all=True)
        return Targets(communes=sorted(ctx.scope))
    if mode == "communes":
        ids = [i for i in (to_int(v) for v in form.getlist("communes")) if i is not None]
        if not all_in_scope(s, ctx.user, ids):
            raise Forbidden()
        return Targets(communes=ids)
    if mode == "groups":
        ids = [i for i in (to_int(v) for v in form.getlist("groups")) if i is not None]
        if not ids:
            raise ValueError("no groups")
        if not all_in_scope(s, ctx.user, group_members(s, ids)):
            raise Forbidden()
        return Targets(groups=ids)
    if mode == "picked":  # by name (target_picker.py); a pick outside the area is a 403
        return target_picker.to_targets(target_picker.picked(s, ctx, [str(v) for v in form.getlist("pick")]))
    if mode == "stations":
        words = [w for w in str(form.get("stations", "")).replace(";", ",").replace(" ", ",").split(",") if w]
        ids = {i for i in (to_int(w) for w in words) if i is not None}
        uids = [w for w in words if to_int(w) is None]
        rows = list(s.execute(select(Device.id, Device.commune_id).where(
            (Device.id.in_(ids)) | (Device.uid.in_(uids)))))
        if not all_in_scope(s, ctx.user, [c for _i, c in rows]):
            raise Forbidden()
        return Targets(devices=[i for i, _c in rows] or [-1])
    raise ValueError("no target")


@router.post("/bulletins/pick", response_class=HTMLResponse)
async def pick_targets(request: Request) -> Response:
    """The send form posted back to search for targets (no JavaScript): the page again with what
    was typed and ticked kept, and the results for `target_q`. Nothing is sent."""
    _rt, form, ctx = await authorized_form(request, Action.BROADCAST_SEND)
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in ("title", "media_sha256", "start_local",
                                                                  "priority")}
    values["target"] = "picked"
    return _bulletins_page(request, ctx, form=values, posted=form, selected=values["media_sha256"] or None)


@router.post("/bulletins/send", response_class=HTMLResponse)
async def send(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.BROADCAST_SEND)
    values = {k: str(form.get(k, "")) for k in ("title", "media_sha256", "target", "stations", "start_local",
                                                 "priority")}
    values["communes"] = [to_int(v) for v in form.getlist("communes")]
    values["groups"] = [to_int(v) for v in form.getlist("groups")]
    priority = values["priority"] or "normal"
    if priority not in ("normal", "priority"):
        raise Forbidden()  # emergency goes through its own page (docs/panel.md)
    start_at = None
    if values["start_local"]:
        try:
            start_at = parse_local(values["start_local"], ZoneInfo(rt.settings.timezone))
        except ValueError:  # dd/mm/yyyy HH:MM, the panel's own format (templates/_fields.html)
            return _bulletins_page(request, ctx, status=422, form=values, posted=form,
                                   error=(BAD_DATETIME, {}))
    try:
        with rt.db.session() as s:
            targets = form_targets(s, ctx, form)
            req = broadcasts.BroadcastCreate(
                title=values["title"].strip(), media_sha256=values["media_sha256"], targets=targets,
                start_at=start_at, priority=priority,
            )
            # The same use case as the API: the area's broadcast policy and content approval
            # apply; what the sender may not approve is saved as a draft for an approver.
            bc = sending.send(s, ctx.user, req).broadcast
            s.commit()
            bc_id, airs = bc.id, bc.status == BroadcastStatus.SCHEDULED
    except (ValidationError, ValueError) as exc:
        problems = exc.errors() if isinstance(exc, ValidationError) else []
        fields = {e["loc"][0] for e in problems if e["loc"]}
        if "title" in fields:
            error = ("Hãy nhập tiêu đề bản tin.", {})
        elif "media_sha256" in fields:
            error = ("Hãy chọn một bản tin âm thanh.", {})
        else:
            error = ("Hãy chọn nơi phát: tất cả, một số xã hoặc một số trạm.", {})
        return _bulletins_page(request, ctx, status=422, form=values, error=error, posted=form)
    except UserError as exc:
        return _bulletins_page(request, ctx, status=exc.status, form=values, posted=form,
                               error=(t(exc.key, ctx.lang, **exc.params), {}))
    if not airs:
        return redirect(f"/playlog?broadcast_id={bc_id}&ok=draft")
    sent = "sent" if rt.broker_answering() else "sent_broker_down"
    return redirect(f"/playlog?broadcast_id={bc_id}&ok={sent}")


# ---- approval queue ---------------------------------------------------------------------------


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        ctx.require(Action.BROADCAST_APPROVE)
        drafts = queries.drafts(s, ctx.scope)
    return render(request, "approvals.html", ctx=ctx, drafts=drafts)


@router.post("/approvals/{broadcast_id}/approve", response_class=HTMLResponse)
async def approve(request: Request, broadcast_id: int) -> Response:
    rt, _form, ctx = await authorized_form(request, Action.BROADCAST_APPROVE)
    try:
        with rt.db.session() as s:
            user = s.get(User, ctx.user.id)
            assert user is not None
            sending.approve(s, user, broadcast_id)  # checks the area too; queues the dispatch
    except UserError as exc:
        if exc.status == 403:
            raise Forbidden() from exc
        with rt.db.session() as s:
            drafts = queries.drafts(s, ctx.scope)
        return render(request, "approvals.html", status=exc.status, ctx=ctx, drafts=drafts,
                      error=t(exc.key, ctx.lang, **exc.params))
    return redirect(f"/playlog?broadcast_id={broadcast_id}&ok=approved")


@router.get("/playlog", response_class=HTMLResponse)
def playlog(request: Request, broadcast_id: str = "", page: int = 1) -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        bc_id = to_int(broadcast_id)
        broadcast: Broadcast | None = None
        if bc_id:
            try:  # the API's rule (GET /broadcasts/{id}): reaches the user's area, or they sent it
                broadcast = sending.get(s, ctx.user, bc_id)
            except NotFound:
                broadcast = None  # not in this user's area
        result = queries.play_log(s, broadcast_id=bc_id, scope=ctx.scope, page=page)
        summary: dict[str, int] = {}
        late: list[dict[str, Any]] = []
        if broadcast is not None:
            late = late_stations(s, broadcast, ctx.scope, runtime(request).settings.timezone, ctx.lang)
            # Counted on the caller's stations only: a commune operator looking at a province-wide
            # bulletin sees their commune's stations, as the play log's rows below.
            mine = in_scope(ctx.scope, Device.commune_id)
            for (st,) in s.execute(select(PlayLog.status).join(Device, Device.id == PlayLog.device_id)
                                   .where(PlayLog.broadcast_id == broadcast.id, *mine)):
                summary[st] = summary.get(st, 0) + 1
            expected = s.scalar(select(func.count()).select_from(Delivery)
                                .join(Device, Device.id == Delivery.device_id)
                                .where(Delivery.broadcast_id == broadcast.id, *mine)) or 0
        else:
            expected = 0
    return render(request, "playlog.html", ctx=ctx, result=result, broadcast=broadcast, summary=summary,
                  expected=expected, bc_id=bc_id, late=late)
