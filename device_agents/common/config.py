"""One settings object for an agent: the JSON file the controller issued, plus env overrides."""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "COMMUNECAST_AGENT_"


class AgentConfig(BaseModel):
    """The settings: what is given (the issued JSON, keyword arguments) first, then for a field not
    given its environment variable (COMMUNECAST_AGENT_<FIELD>, any case; JSON for lists and dicts),
    then the default. pydantic-settings' BaseSettings did the same, but importing it costs a station
    1.4 MB of RSS for the rest of its life (issue 21: the agent's 60 MB budget on a Pi)."""

    model_config = ConfigDict(extra="ignore")

    def __init__(self, **data: Any) -> None:
        super().__init__(**_with_env(type(self), data))

    uid: str
    kind: str = "speaker"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_keepalive_s: int = 15
    # Reconnect delays: full jitter up to base × 2^attempt, at most cap (mqtt_adapter/backoff.py),
    # so a fleet does not come back in lockstep after a broker restart.
    mqtt_reconnect_base_s: float = Field(default=1.0, gt=0)
    mqtt_reconnect_cap_s: float = Field(default=30.0, gt=0)
    # An event the broker acknowledged and no controller receipt named this long after is sent
    # again; the wait grows (x2, jittered) while none comes, up to the cap (device_agents/common/link.py).
    receipt_wait_s: float = Field(default=15.0, gt=0)
    receipt_wait_cap_s: float = Field(default=600.0, gt=0)
    # TLS to the broker (docs/enrollment.md, "TLS"): TLS 1.2+, certificate and host name always
    # verified. CA file: the broker's CA (enrollment stores it next to config.json; relative paths
    # are in data_dir); None = the system's trust store. Client cert/key only for mutual TLS.
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_client_cert_file: Path | None = None
    mqtt_client_key_file: Path | None = None
    mqtt_tls_server_name: str | None = None  # the name in the broker's certificate, if not mqtt_host
    controller_url: str
    controller_public_keys: list[str] = Field(min_length=1)
    groups: dict[str, int] = Field(default_factory=dict)
    data_dir: Path = Path("./agent-data")

    # Hardware: a pyserial URL for the RS-485 bus (None = no relay board) and ALSA device.
    modbus_url: str | None = None
    modbus_baudrate: int = 9600
    audio_device: str = "default"

    # LED boards (kind "led"): controller protocol, its pyserial URL and the panel size (docs/led.md).
    led_protocol: str = Field(default="alpha", pattern=r"^(alpha|bx5k|bitmap)$")
    led_url: str | None = None
    led_baudrate: int = 9600
    led_width: int = 192
    led_height: int = 32
    led_refresh_s: float = 60.0  # re-assert the content this often (a rebooted board lost it)
    led_ping_s: float = 10.0  # ask the board controller whether it is alive this often
    led_backoff_max_s: float = 30.0

    default_volume: int = Field(default=80, ge=0, le=100)
    # An item whose start was missed by more than this is reported 'missed', not played.
    late_start_tolerance_s: float = 30.0
    relay_lead_s: float = 1.5  # amplifier needs a moment to settle before the first word
    relay_hold_s: float = 3.0  # keep it on briefly in case the next item follows
    prepare_ahead_s: float = 120.0  # decode audio this long before the start
    telemetry_interval_s: float = 60.0
    clock_offset_interval_s: float = Field(default=600.0, gt=0)  # re-measure it this often (docs/health.md)
    # Streamed items (docs/live.md): audio held before the first sample sounds, the most that may
    # queue up before the oldest is dropped, and the level under which a relay counts as silent.
    stream_jitter_s: float = Field(default=0.2, ge=0, le=5)
    stream_max_latency_s: float = Field(default=1.0, ge=0.2, le=30)
    stream_silence_dbfs: float = Field(default=-60.0, le=0)

    @classmethod
    def load(cls, path: Path, **overrides: object) -> AgentConfig:
        data = json.loads(path.read_text(encoding="utf-8"))
        data.setdefault("data_dir", str(path.parent))
        data.update(overrides)
        return cls(**data)

    def save(self, path: Path) -> None:
        """Write with owner-only permissions: the file holds the broker password."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self.model_dump_json(indent=2))


def _with_env(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    env = {k.lower(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
    if not env:
        return data
    out = dict(data)
    for name, field in model.model_fields.items():
        value = env.get((ENV_PREFIX + name).lower())
        if name in data or value is None:
            continue
        complex_ = typing.get_origin(field.annotation) in (list, dict)
        out[name] = json.loads(value) if complex_ else value
    return out
