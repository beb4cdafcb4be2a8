"""Settings of the provincial connector (COMMUNECAST_PROVINCIAL_*) and its field mapping.

The ministry's document is not at hand, so nothing about the province's API is fixed in
code: paths, login field names and every field name of the records are settings. The
password comes from the environment or a file (re-read at each login, so fixing a wrong
password needs no restart), never from the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Canonical record keys (what the connector knows) -> nothing; the mappings below say
# which field of the province's JSON each one goes to: {province_field: canonical_key}.
STATUS_KEYS = (
    "idempotency_key", "station_id", "imei", "name", "type", "supplier", "volume", "operating_state",
    "online", "connection_type", "signal", "latitude", "longitude", "power", "mains_voltage",
    "temperature", "storage", "playing", "commune_code", "reported_at",
)  # fmt: skip
PLAY_LOG_KEYS = (
    "idempotency_key", "station_id", "bulletin_id", "bulletin_type", "priority", "title", "category",
    "duration_s", "started_at", "finished_at", "relay", "relay_source", "volume", "status", "reason",
    "commune_code",
)  # fmt: skip

# Vietnamese source-system style names (camelCase without diacritics, as such APIs use).
DEFAULT_STATUS_FIELDS: dict[str, str] = {
    "maDinhDanh": "idempotency_key",
    "maThietBi": "station_id",
    "imei": "imei",
    "tenThietBi": "name",
    "loaiThietBi": "type",
    "nhaCungCap": "supplier",
    "amLuong": "volume",
    "trangThaiHoatDong": "operating_state",
    "kieuKetNoi": "connection_type",
    "cuongDoTinHieu": "signal",
    "viDo": "latitude",
    "kinhDo": "longitude",
    "nguonDien": "power",
    "nhietDo": "temperature",
    "dungLuongLuuTru": "storage",
    "noiDungDangPhat": "playing",
    "thoiGianCapNhat": "reported_at",
    "maXa": "commune_code",  # the commune's official code since 1 July 2025 (docs/areas.md)
}
DEFAULT_PLAY_LOG_FIELDS: dict[str, str] = {
    "maDinhDanh": "idempotency_key",
    "maThietBi": "station_id",
    "maXa": "commune_code",
    "maBanTin": "bulletin_id",
    "loaiBanTin": "bulletin_type",
    "mucDoUuTien": "priority",
    "tieuDe": "title",
    "linhVuc": "category",
    "thoiLuong": "duration_s",
    "thoiGianBatDau": "started_at",
    "thoiGianKetThuc": "finished_at",
    "laTiepSong": "relay",
    "nguonTiepSong": "relay_source",
    "amLuong": "volume",
    "trangThai": "status",
}


class ProvincialSettings(BaseSettings):
    """The connector is on when `base_url` is set."""

    model_config = SettingsConfigDict(env_prefix="COMMUNECAST_PROVINCIAL_", env_file=None, extra="ignore")

    base_url: str | None = None
    login_path: str = "/api/auth/login"
    status_path: str = "/api/thiet-bi/trang-thai"
    play_log_path: str = "/api/ban-tin/nhat-ky-phat"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None  # wins over `password`; re-read at every login
    login_username_field: str = "username"
    login_password_field: str = "password"  # noqa: S105 (a field name, not a password)
    token_field: str = "access_token"  # noqa: S105
    expires_in_field: str = "expires_in"
    batch_field: str = "data"  # the records travel as {"<batch_field>": [...]}
    interval_s: float = Field(default=60.0, ge=0.05, le=3600)  # station status snapshots
    poll_s: float = Field(default=2.0, ge=0.02, le=600)  # how soon new play logs leave
    batch_size: int = Field(default=200, ge=1, le=5000)
    timeout_s: float = Field(default=15.0, gt=0, le=300)
    backoff_base_s: float = Field(default=1.0, gt=0, le=600)
    backoff_max_s: float = Field(default=300.0, gt=0, le=3600)
    token_margin_s: float = Field(default=30.0, ge=0, le=3600)  # log in again this long before expiry
    # A newer undelivered status of a station replaces the older one (status is a state,
    # play logs are a log and are never coalesced). False keeps every snapshot.
    status_coalesce: bool = True
    supplier: str = "communecast"
    status_fields: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_STATUS_FIELDS))
    play_log_fields: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PLAY_LOG_FIELDS))
    verify_tls: bool = True

    @field_validator("status_fields")
    @classmethod
    def _status(cls, v: dict[str, str]) -> dict[str, str]:
        return _check(v, STATUS_KEYS)

    @field_validator("play_log_fields")
    @classmethod
    def _play(cls, v: dict[str, str]) -> dict[str, str]:
        return _check(v, PLAY_LOG_KEYS)

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)

    def read_password(self) -> str:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password.get_secret_value() if self.password else ""


def _check(mapping: dict[str, str], known: tuple[str, ...]) -> dict[str, str]:
    unknown = sorted(set(mapping.values()) - set(known))
    if unknown:
        raise ValueError(f"unknown source fields {unknown}; known: {', '.join(known)}")
    if "idempotency_key" not in mapping.values():
        # The province dedupes by it: it always travels, under its default name if unmapped.
        mapping = {**mapping, "maDinhDanh": "idempotency_key"}
    return mapping


def apply_mapping(record: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """The province's JSON for one canonical record (fields it does not map are left out)."""
    return {target: record.get(source) for target, source in mapping.items()}
