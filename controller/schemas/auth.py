"""Sign-in with a bearer token, and who the caller is."""

from __future__ import annotations

from controller.schemas.common import Out


class TokenOut(Out):
    """OAuth2 password flow reply."""

    access_token: str
    token_type: str
    expires_in: int


class Me(Out):
    id: int
    username: str
    role: str
    area_id: int | None = None
