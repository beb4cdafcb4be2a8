"""Panel page: where my alarms reach me (SMS, Zalo, quiet hours); an admin sets them for anyone.

GET/POST /account/alerts (?user_id= for an admin). The checks live in `usecases/alerts.py`: a
non-admin asking for someone else's settings gets 403 like from the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from controller.core.errors import UserError
from controller.core.i18n import t
from controller.core.permissions import Action
from controller.db.models_alerts import UserAlertPrefs
from controller.usecases import alerts
from controller.web.pagekit import authorized_form, page_ctx, to_int, user_error
from controller.web.panel import Ctx, Forbidden, redirect, render

router = APIRouter(include_in_schema=False)


def _shown(prefs: UserAlertPrefs | None) -> dict[str, Any]:
    """The form's values from the stored settings (empty for a user who never saved any)."""
    if prefs is None:
        return {"phone": "", "zalo_user_id": "", "sms": False, "zalo": False, "quiet_start": "",
                "quiet_end": ""}
    return {"phone": prefs.phone or "", "zalo_user_id": prefs.zalo_user_id or "", "sms": prefs.sms,
            "zalo": prefs.zalo, "quiet_start": prefs.quiet_start or "", "quiet_end": prefs.quiet_end or ""}


def _page(request: Request, ctx: Ctx, user_id: int, *, status: int = 200, error: Any = None,
          values: dict[str, Any] | None = None) -> Response:  # fmt: skip
    rt = ctx.rt
    with rt.db.session() as s:
        try:
            user, prefs = alerts.get(s, ctx.user, user_id)
        except UserError as exc:
            if exc.status == 403:
                raise Forbidden() from exc
            return render(
                request, "error.html", status=exc.status, ctx=ctx, message=user_error(exc, ctx.lang)
            )
        people = [(u.id, u.username) for u in alerts.people(s, ctx.user)]
        shown = values or _shown(prefs)
        username = user.username
    s_cfg = rt.settings
    critical = ", ".join(t(f"alarm.kind.{k}", ctx.lang) for k in s_cfg.alarm_critical_kinds)
    return render(request, "account_alerts.html", status=status, ctx=ctx, target_id=user_id,
                  target_name=username, people=people, values=shown, error=error,
                  sms_ready=bool(s_cfg.alarm_sms_port), zalo_ready=s_cfg.zalo_enabled,
                  critical=critical)  # fmt: skip


@router.get("/account/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, user_id: int | None = None) -> Response:
    ctx = page_ctx(request, Action.VIEW)
    return _page(request, ctx, user_id or ctx.user.id)


@router.post("/account/alerts", response_class=HTMLResponse)
async def alerts_save(request: Request) -> Response:
    rt, form, ctx = await authorized_form(request, Action.VIEW)
    user_id = to_int(form.get("user_id")) or ctx.user.id
    values = {
        k: str(form.get(k, "")).strip()[:80] for k in ("phone", "zalo_user_id", "quiet_start", "quiet_end")
    }
    flags = {k: str(form.get(k, "")) == "1" for k in ("sms", "zalo")}
    try:
        with rt.db.session() as s:
            alerts.save(s, ctx.user, user_id, alerts.AlertPrefsIn(**values, **flags))
    except UserError as exc:
        if exc.status == 403:
            raise Forbidden() from exc
        return _page(request, ctx, user_id, status=exc.status, error=user_error(exc, ctx.lang),
                     values={**values, **flags})  # fmt: skip
    suffix = f"&user_id={user_id}" if user_id != ctx.user.id else ""
    return redirect(f"/account/alerts?ok=alerts{suffix}")
