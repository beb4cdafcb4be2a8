"""Bounded integer inputs for routes and request bodies.

An unbounded `int` lets a caller send 2**70 as an id: SQLite refuses integers beyond 64 bits
with OverflowError and PostgreSQL with NumericValueOutOfRange, both 500s (issue 16, found by
schemathesis). Every id and limit the API accepts goes through one of these aliases, so the
request is refused with a 422 before it reaches the database.

Ids stop at 2**31 - 1: our primary keys are INTEGER, which PostgreSQL keeps in 32 bits
(SQLite in 64), so no row can have a larger id. Limits start at 1: `limit=-1` used to mean
"no limit" on SQLite and a 500 on PostgreSQL.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from controller.schemas.common import MAX_ID

MAX_LIMIT = 10_000

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A row id in the URL path (/devices/{device_id})."""

QueryId = Annotated[int, Query(ge=1, le=MAX_ID)]
"""A row id as a query parameter (?device_id=)."""

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
"""How many rows a list returns; each route may still cap it lower."""
