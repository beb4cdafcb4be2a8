"""Issue 16, item 12: alarm e-mail over STARTTLS verifies the server's certificate.

`smtp.starttls()` without a context encrypted but accepted any certificate, so whoever sat
between the controller and the mail server could read alarms and the SMTP password. Now a
default SSL context (system CAs, host name checked), or `smtp_ca_file` for a private CA.
A real local SMTP server (aiosmtpd) that requires STARTTLS, with a certificate from its
own CA: without that CA the send is refused, nothing delivered; with it, delivered."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from communecast import tls
from communecast.mosquitto import free_port
from controller.core.config import Settings
from controller.services.alarms.notify import AlarmNote, SmtpNotifier
from tests.support.mail import Mailbox


@pytest.fixture
def tls_mailbox(tmp_path: Path) -> Iterator[tuple[Mailbox, int, Path]]:
    """(mailbox, port, CA certificate file) of a STARTTLS-only SMTP server on 127.0.0.1."""
    ca = tls.new_ca("test SMTP CA")
    server = tls.issue(ca, ["127.0.0.1", "localhost"])
    tls.save(server, tmp_path / "smtp.crt", tmp_path / "smtp.key")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "smtp.crt", tmp_path / "smtp.key")
    box, port = Mailbox(), free_port()
    smtpd = Controller(box, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    smtpd.start()
    yield box, port, ca_file
    smtpd.stop()


def _note() -> AlarmNote:
    return AlarmNote(event="opened", alarm_id=1, device_id=7, device_uid="spk-test", device_name="Cụm loa",
                     kind="offline", state="active", opened_at=datetime.now(UTC))  # fmt: skip


def _settings(tmp_path: Path, port: int, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=True,
                    alarm_email_to=["ops@example.vn"], **extra)  # fmt: skip


async def test_an_unverified_certificate_is_refused(
    tls_mailbox: tuple[Mailbox, int, Path], tmp_path: Path
) -> None:
    box, port, _ = tls_mailbox
    with pytest.raises(ssl.SSLCertVerificationError):
        await SmtpNotifier(_settings(tmp_path, port)).send(_note())
    assert box.messages == []


async def test_with_the_private_ca_the_mail_is_delivered(
    tls_mailbox: tuple[Mailbox, int, Path], tmp_path: Path
) -> None:
    box, port, ca_file = tls_mailbox
    await SmtpNotifier(_settings(tmp_path, port, smtp_ca_file=ca_file)).send(_note())
    assert len(box.messages) == 1 and "spk-test" in box.messages[0].get_content()
