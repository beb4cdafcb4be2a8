"""A real SMTP server's handler that keeps every message (aiosmtpd), for the alarm e-mail tests.

Shared by tests/system/test_alarms_e2e.py and tests/integration/test_smtp_tls.py, so it lives
here rather than in one of them.
"""

from __future__ import annotations

import email
import email.policy
from typing import Any


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"
