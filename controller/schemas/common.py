"""What every response model shares: the base class, the number type, small shared shapes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

MAX_ID = 2**31 - 1  # PostgreSQL's INTEGER; SQLite's is wider (controller/api/params.py says why)

BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A row id inside a JSON body (the request models)."""

# A JSON number that may be an integer or not: plain `float` would turn a 5 into 5.0 on the wire.
Number = float | int


class Out(BaseModel):
    """Base of the response models.

    Routes build plain dicts (services fill them) and FastAPI validates them into these models.
    Every route declares `response_model_exclude_unset=True`: a key the dict leaves out stays out
    of the reply (a default would otherwise add it, with null), here and in nested models.
    `extra="allow"` keeps a key a model does not (yet) name on the wire: the contract documents,
    it never silently drops data.
    """

    model_config = ConfigDict(extra="allow", from_attributes=True)


class StatusOut(Out):
    """A state change acknowledged: cancel, delete."""

    id: int
    status: str


class PolicyOutcome(Out):
    """Why something may air (services/policy.py enforce): ok, exempt or override."""

    status: str
    reason: str | None = None
    rule: dict[str, Any] | None = None
    where: list[dict[str, Any]] | None = None  # a recording still in use: what uses it
    code: str | None = None


class Problem(Out):
    """One invalid field of a request (422 request.invalid) or line of a CSV import."""

    field: str | None = None
    line: int | None = None
    problem: str


class ErrorBody(Out):
    """Every refusal (controller/app.py handlers): the message in the caller's language and its
    stable code; an invalid request lists its problems, a policy refusal (422) the broken rule."""

    detail: Any
    code: str | None = None
    errors: list[Problem] | None = None
    rule: dict[str, Any] | None = None


POLICY_REFUSAL: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "invalid, or refused by a commune's broadcast policy (`rule`)"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "not found"}}


def binary(description: str, *media_types: str) -> dict[int | str, dict[str, Any]]:
    """The documented 200 of a route that answers a file (PNG, CSV, audio), not JSON."""
    schema = {"type": "string", "format": "binary"}
    return {200: {"description": description, "content": {m: {"schema": schema} for m in media_types}}}
