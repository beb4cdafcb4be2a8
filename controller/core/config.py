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

    # When set, the controller writes the broker's password and ACL files here
    # and signals the broker (pid file) to reload them when stations change.
    broker_auth_dir: Path | None = None
    broker_pid_file: Path | None = None

    timezone: str = "Asia/Ho_Chi_Minh"
    media_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    media_bitrate: str = "32k"
    horizon_days: int = Field(default=8, ge=1, le=60)
    token_ttl_hours: int = 12
    # First start: create the 'admin' account with this password if it does not exist.
    admin_password: str | None = None

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
