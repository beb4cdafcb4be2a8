"""TLS to the broker: one way to build the client context, for agents and the controller.

Always TLS 1.2 or newer with the certificate chain *and* the host name verified; there is
deliberately no switch to turn either off. When stations reach the broker by an address
that is not in its certificate (an IP, a NAT name), `server_name` says which name to
verify instead.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from device_agents.common.config import AgentConfig

CA_FILE_NAME = "broker-ca.pem"  # where enrollment stores the broker's CA, next to config.json


class _NamedContext(ssl.SSLContext):
    """An SSLContext that verifies a fixed server name, whatever host the client dialled
    (paho passes the host it connects to; this is the one place to say otherwise)."""

    server_name: str | None = None

    def wrap_socket(self, sock: Any, *args: Any, server_hostname: str | None = None,
                    **kwargs: Any) -> ssl.SSLSocket:
        return super().wrap_socket(sock, *args, server_hostname=self.server_name or server_hostname, **kwargs)

    def wrap_bio(self, incoming: Any, outgoing: Any, *args: Any, server_hostname: str | None = None,
                 **kwargs: Any) -> ssl.SSLObject:
        name = self.server_name or server_hostname
        return super().wrap_bio(incoming, outgoing, *args, server_hostname=name, **kwargs)


def client_context(*, ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None,
                   server_name: str | None = None) -> ssl.SSLContext:
    """`ca_file` None: the system's trust store (a broker with a public certificate)."""
    ctx = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname on
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    else:
        ctx.load_default_certs()
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    ctx.server_name = server_name or None
    return ctx


def _resolve(path: Path | None, base: Path) -> Path | None:
    if path is None:
        return None
    return path if path.is_absolute() else base / path


def agent_ca_file(config: AgentConfig) -> Path | None:
    return _resolve(config.mqtt_ca_file, config.data_dir)


def agent_context(config: AgentConfig) -> ssl.SSLContext | None:
    """The station's TLS context (None: plain MQTT). Relative paths are in its data dir."""
    if not config.mqtt_tls:
        return None
    return client_context(
        ca_file=agent_ca_file(config),
        cert_file=_resolve(config.mqtt_client_cert_file, config.data_dir),
        key_file=_resolve(config.mqtt_client_key_file, config.data_dir),
        server_name=config.mqtt_tls_server_name,
    )  # fmt: skip
