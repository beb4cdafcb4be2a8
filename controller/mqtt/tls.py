"""The controller's TLS context for the broker (its bus and the dynamic-security admin link).

Built the same way as a station's (device_agents.common.tls): TLS 1.2+, chain and host name
verified, no way to switch verification off.
"""

from __future__ import annotations

import ssl

from controller.core.config import Settings
from device_agents.common.tls import client_context


def broker_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """None when the controller talks plain MQTT (a broker on the same host or network)."""
    if not settings.mqtt_tls:
        return None
    return client_context(
        ca_file=settings.mqtt_ca_file, cert_file=settings.mqtt_client_cert_file,
        key_file=settings.mqtt_client_key_file, server_name=settings.mqtt_tls_server_name,
    )  # fmt: skip
