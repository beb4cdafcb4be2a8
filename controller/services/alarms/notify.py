"""Alarm notifications: webhooks and e-mail, pluggable, never in the way of ingest.

`NotificationHub.publish` only puts a note on a bounded queue (from any thread); one
worker per notifier sends them in order with retries and exponential backoff. When a
notifier's queue is full (a receiver down for a long time) the oldest note is dropped
and counted, so memory stays bounded. More notifiers plug in through the setting
`alarm_notifiers` ("module:factory", factory(settings) -> Notifier).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import importlib
import json
import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from controller.core.config import Settings
from controller.core.i18n import t
from controller.i18n import formats
from controller.services import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlarmNote:
    """One alarm change, as notifiers and webhooks see it."""

    event: str  # opened | acknowledged | resolved
    alarm_id: int
    device_id: int
    device_uid: str
    device_name: str
    kind: str
    state: str
    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": f"alarm.{self.event}",
            "alarm": {
                "id": self.alarm_id, "device_id": self.device_id, "device_uid": self.device_uid,
                "device_name": self.device_name, "kind": self.kind, "state": self.state,
                "opened_at": self.opened_at.isoformat(),
                "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
                "detail": self.detail,
            },
            "text": {"vi": self.subject("vi"), "en": self.subject("en")},
        }  # fmt: skip

    def subject(self, lang: str) -> str:
        return t(f"alarm.notify.{self.event}", lang, kind_name=t(f"alarm.kind.{self.kind}", lang),
                 device=self.device_name)  # fmt: skip

    def body(self, lang: str, tz: str) -> str:
        def local(dt: datetime) -> str:
            return formats.date_time(dt, tz, seconds=True, lang=lang)

        resolved = t("alarm.notify.resolved_line", lang, resolved_at=local(self.resolved_at)) \
            if self.resolved_at else ""  # fmt: skip
        return t("alarm.notify.body", lang, device=self.device_name, uid=self.device_uid,
                 kind_name=t(f"alarm.kind.{self.kind}", lang), state=self.state,
                 opened_at=local(self.opened_at), resolved_line=resolved,
                 detail=json.dumps(self.detail, ensure_ascii=False))  # fmt: skip


class PermanentFailure(Exception):
    """The receiver refused the note (4xx): retrying would not help."""


class Notifier(Protocol):
    name: str

    async def send(self, note: AlarmNote) -> None:
        """Deliver one note or raise (PermanentFailure: do not retry)."""
        ...


class WebhookNotifier:
    """POSTs the note as JSON; with a secret, X-Communecast-Signature: sha256=<HMAC of the body>."""

    def __init__(self, url: str, *, secret: str | None = None, timeout: float = 5.0) -> None:
        self.url = url
        self.name = f"webhook:{httpx.URL(url).host}"
        self._secret = secret.encode() if secret else None
        self._http = httpx.AsyncClient(timeout=timeout)

    async def send(self, note: AlarmNote) -> None:
        body = json.dumps(note.to_json(), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Communecast-Event": note.event}
        if self._secret:
            digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers["X-Communecast-Signature"] = f"sha256={digest}"
        r = await self._http.post(self.url, content=body, headers=headers)
        if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
            raise PermanentFailure(f"{self.url} answered {r.status_code}")
        r.raise_for_status()

    async def close(self) -> None:
        await self._http.aclose()


def smtp_tls_context(cfg: Settings) -> ssl.SSLContext:
    """Certificate and host name checked (issue 16): `starttls()` without a context encrypts
    but trusts any certificate, so a man in the middle read alarms and the SMTP password.
    System CAs, or `smtp_ca_file` for a mail server with a private CA."""
    return ssl.create_default_context(cafile=str(cfg.smtp_ca_file) if cfg.smtp_ca_file else None)


class SmtpNotifier:
    """Plain SMTP (STARTTLS and login when configured); Vietnamese first, English below."""

    def __init__(self, cfg: Settings) -> None:
        assert cfg.smtp_host
        self.name = f"smtp:{cfg.smtp_host}"
        self._cfg = cfg

    async def send(self, note: AlarmNote) -> None:
        await asyncio.to_thread(self._send, note)

    def _send(self, note: AlarmNote) -> None:
        cfg = self._cfg
        msg = EmailMessage()
        msg["Subject"] = note.subject("vi")
        msg["From"] = cfg.smtp_from
        msg["To"] = ", ".join(cfg.alarm_email_to)
        msg.set_content(note.body("vi", cfg.timezone) + "\n\n-- English --\n" + note.subject("en") + "\n"
                        + note.body("en", cfg.timezone))  # fmt: skip
        with smtplib.SMTP(cfg.smtp_host or "", cfg.smtp_port, timeout=10) as smtp:
            if cfg.smtp_starttls:
                smtp.starttls(context=smtp_tls_context(cfg))
            if cfg.smtp_username:
                smtp.login(cfg.smtp_username, cfg.smtp_password or "")
            smtp.send_message(msg)


def notifiers_from_settings(cfg: Settings) -> list[Notifier]:
    secret = cfg.alarm_webhook_secret
    out: list[Notifier] = [WebhookNotifier(u, secret=secret) for u in cfg.alarm_webhook_urls]
    if cfg.smtp_host and cfg.alarm_email_to:
        out.append(SmtpNotifier(cfg))
    for path in cfg.alarm_notifiers:
        module, _, factory = path.partition(":")
        out.append(getattr(importlib.import_module(module), factory)(cfg))
    return out


class NotificationHub:
    def __init__(self, notifiers: list[Notifier], *, max_queue: int = 1000, attempts: int = 6,
                 backoff_s: float = 0.5) -> None:  # fmt: skip
        self.notifiers = notifiers
        self._max = max_queue
        self._attempts = attempts
        self._backoff = backoff_s
        self._queues: list[asyncio.Queue[AlarmNote]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0

    def publish(self, notes: list[AlarmNote]) -> None:
        """Queue notes for every notifier; safe from worker threads; never blocks."""
        loop = self._loop
        if not notes or loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(notes)
        else:
            loop.call_soon_threadsafe(self._enqueue, notes)

    def _enqueue(self, notes: list[AlarmNote]) -> None:
        for q in self._queues:
            for note in notes:
                if q.full():
                    q.get_nowait()
                    self.dropped += 1
                    log.warning("alarm notification queue full; dropped the oldest note")
                q.put_nowait(note)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queues = [asyncio.Queue(self._max) for _ in self.notifiers]
        workers = [asyncio.create_task(self._worker(n, q), name=f"notify-{n.name}")
                   for n, q in zip(self.notifiers, self._queues, strict=True)]  # fmt: skip
        try:
            await asyncio.Event().wait()
        finally:
            for w in workers:
                w.cancel()
            for w in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await w
            for n in self.notifiers:
                close = getattr(n, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        await close()

    async def _worker(self, notifier: Notifier, queue: asyncio.Queue[AlarmNote]) -> None:
        while True:
            note = await queue.get()
            delay = self._backoff
            for attempt in range(1, self._attempts + 1):
                try:
                    await notifier.send(note)
                    metrics.NOTIFICATIONS.labels(notifier.name, "sent").inc()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    permanent = isinstance(exc, PermanentFailure)
                    if permanent or attempt == self._attempts:
                        metrics.NOTIFICATIONS.labels(notifier.name, "failed").inc()
                        log.warning("%s: giving up on alarm %s %s: %s", notifier.name, note.alarm_id,
                                    note.event, exc)  # fmt: skip
                        break
                    log.info("%s: alarm %s %s failed (%s); retry in %.1f s", notifier.name,
                             note.alarm_id, note.event, exc, delay)  # fmt: skip
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
