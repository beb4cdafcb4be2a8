"""`/panel/targets.json?q=`: the target picker's search while typing (controller/web/target_picker.py).

A read for any logged-in user, limited to their area like every list: another area's communes
and stations are never in the answer.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from controller.web import target_picker
from controller.web.i18n import gettext_for
from controller.web.panel import current, runtime, with_headers

router = APIRouter(include_in_schema=False)


@router.get("/panel/targets.json")
def targets_json(request: Request, q: str = "", stations: str = "1") -> Response:
    with runtime(request).db.session() as s:
        ctx = current(request, s)
        found = target_picker.search(s, ctx, q[:100], stations=stations != "0")
    _ = gettext_for(ctx.lang)
    rows = [c | {"kind_label": _(target_picker.KIND_LABELS[c["kind"]])} for c in target_picker.as_json(found)]
    return with_headers(JSONResponse({"results": rows, "none": _("Không tìm thấy nơi nào khớp.")}))
