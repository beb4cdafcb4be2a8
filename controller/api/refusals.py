"""Refusals as HTTP replies: the services raise data (controller/core/errors.py UserError and its
kinds), only this layer knows it becomes a JSONResponse."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from controller.core.errors import UserError
from controller.core.i18n import t


def refusal(exc: UserError, lang: str) -> JSONResponse:
    """The body every refusal has (the message in `lang`, its code) plus the data it carries."""
    return JSONResponse({"detail": t(exc.key, lang, **exc.params), "code": exc.key, **exc.details()},
                        status_code=exc.status)


def policy_refusal(exc: UserError, lang: str) -> JSONResponse:
    """A commune's broadcast policy said no (services/policy.py PolicyViolation): 422, with the
    broken rule as data in `rule`."""
    return refusal(exc, lang)
