"""One settings object for the controller: environment (COMMUNECAST_*) + optional file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COMMUNECAST_",
        env_file=None,
        extra="ignore",
    )

    data_dir: Path = Path("./data")
    database_url: str | None = None  # default: SQLite file in data_dir
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    public_url: str | None = None  # how agents reach us; default http://host:port

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_client_id: str = "communecast-controller"
    # Controller replicas (docs/scaling.md): each needs its own mqtt_client_id; with a
    # share group they split station traffic through $share/<group>/... subscriptions.
    mqtt_share_group: str | None = None
    # The replica holding the dispatch lease publishes desired state; it expires this
    # long after its holder stops renewing (a killed replica is replaced within it).
    dispatch_lease_s: float = Field(default=5.0, ge=1.0, le=120.0)

    # When set, the controller writes the broker's password and ACL files here
    # and signals the broker (pid file) to reload them when stations change.
    broker_auth_dir: Path | None = None
    broker_pid_file: Path | None = None
    # When true, the controller manages station accounts live through Mosquitto's
    # dynamic-security plugin ($CONTROL/dynamic-security/v1) with its own MQTT account;
    # retire then disconnects a station at once (docs/enrollment.md).
    broker_dynsec: bool = False
    # How agents reach the broker, when not the way the controller does (NAT, TLS port).
    agent_mqtt_host: str | None = None
    agent_mqtt_port: int | None = None

    # Enrollment codes (docs/enrollment.md): lifetime, and failed tries allowed per
    # client address in a window before it gets 429.
    enrollment_code_ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    enrollment_max_failures: int = Field(default=10, ge=1)
    enrollment_failure_window_s: int = Field(default=900, ge=1)

    timezone: str = "Asia/Ho_Chi_Minh"
    media_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    media_bitrate: str = "32k"
    # Text-to-speech (docs/audio.md). Piper voices by model path, e.g.
    # COMMUNECAST_TTS_PIPER_MODELS='{"vi-north": "/opt/piper/vi_VN-vais1000-medium.onnx"}';
    # voices without a model use espeak-ng.
    tts_max_chars: int = Field(default=5000, ge=100, le=50000)
    tts_timeout_s: float = Field(default=120.0, gt=0, le=1800)
    tts_espeak_executable: str = "espeak-ng"
    tts_piper_executable: str = "piper"
    tts_piper_models: dict[str, Path] = Field(default_factory=dict)
    horizon_days: int = Field(default=8, ge=1, le=60)
    # Re-publish every station this often so recurring schedules roll forward (docs/schedules.md).
    horizon_refresh_hours: float = Field(default=6.0, gt=0, le=24 * 7)
    token_ttl_hours: int = 12
    # First start: create the 'admin' account with this password if it does not exist.
    admin_password: str | None = None
    # Web panel (docs/panel.md): browser sessions and the failed-login lockout.
    session_ttl_hours: int = Field(default=12, ge=1, le=24 * 30)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    cookie_secure: bool | None = None  # None: Secure when the request came over HTTPS

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'communecast.db').resolve()}"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def signing_key_path(self) -> Path:
        return self.data_dir / "keys" / "controller_ed25519.pem"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
