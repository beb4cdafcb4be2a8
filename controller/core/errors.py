"""Errors a person can act on: a status, a message key and its parameters."""

from __future__ import annotations


class UserError(Exception):
    """`status` and `key` are positional-only so a message may have a `{status}` parameter of its own
    (approval.not_draft: "current status: {status}" once raised TypeError, a 500)."""

    def __init__(self, status: int, key: str, /, **params: object) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.params = params

    def details(self) -> dict[str, object]:
        """Machine-readable data the refusal carries besides its message (a policy's broken
        rule...): the API layer puts it in the reply body next to `detail` and `code`."""
        return {}


class RetryLater(UserError):
    """429 and a `Retry-After` header (seconds): the handler copies `headers` to the reply."""

    def __init__(self, key: str, seconds: int, **params: object) -> None:
        super().__init__(429, key, seconds=seconds, **params)
        self.headers = {"Retry-After": str(seconds)}


class NotFound(UserError):
    def __init__(self, key: str, /, **params: object) -> None:
        super().__init__(404, key, **params)
