"""One settings object for the controller: environment (COMMUNECAST_*) + optional file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.limits import INLINE_MEDIA_MAX_BYTES, MAX_PACKET_SIZE

# The zone people read times in (the one literal of it in the controller): Settings.timezone
# defaults to it, and a schedule row written without a zone gets it (controller/db/models_schedules.py).
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


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
    # TLS to the broker for this connection and the dynamic-security admin one (docs/enrollment.md,
    # "TLS"): TLS 1.2+, certificate and host name verified. CA None = the system's trust store;
    # client cert/key only for mutual TLS; server name when mqtt_host is not in the certificate.
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_client_cert_file: Path | None = None
    mqtt_client_key_file: Path | None = None
    mqtt_tls_server_name: str | None = None
    # The replica holding the dispatch lease publishes desired state; it expires this
    # long after its holder stops renewing (a killed replica is replaced within it).
    dispatch_lease_s: float = Field(default=5.0, ge=1.0, le=120.0)
    # Signing-key rotation (docs/security.md): how long stations keep accepting the previous key
    # after `communecast keys rotate` (its --overlap wins), and how often a running controller
    # looks for a rotation or revocation made by the CLI or another replica.
    key_rotation_overlap_s: float = Field(default=7 * 86400.0, ge=0)
    keyring_poll_s: float = Field(default=5.0, gt=0, le=300)

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
    # Enrollment tells stations to use TLS (on agent_mqtt_port, default 8883 unless mqtt_tls) and
    # hands them this CA certificate (default mqtt_ca_file); server name as for mqtt_tls_server_name.
    agent_mqtt_tls: bool = False
    agent_mqtt_ca_file: Path | None = None
    agent_mqtt_tls_server_name: str | None = None

    # Enrollment codes (docs/enrollment.md): lifetime, and failed tries allowed per
    # client address in a window before it gets 429.
    enrollment_code_ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    enrollment_max_failures: int = Field(default=10, ge=1)
    enrollment_failure_window_s: int = Field(default=900, ge=1)

    # Every time shown to people, every local day and month (reports, policy windows, schedules
    # without their own zone) is in this zone; services receive it from their caller.
    timezone: str = DEFAULT_TIMEZONE
    # The panel's map (/map, docs/map.md): a tile URL template such as
    # "https://tile.openstreetmap.org/{z}/{x}/{y}.png" (or a province's own tile server) and its
    # attribution. Empty (the default): no tiles, the stations on a plain background.
    map_tile_url: str = ""
    map_tile_attribution: str = "© OpenStreetMap contributors"
    media_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    # Any other request body (JSON, forms) above this gets 413 before it is read; uploads have
    # their own limits (media_max_bytes, cap_max_bytes). See controller/request_guard.py.
    request_max_bytes: int = Field(default=1024 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    media_bitrate: str = "32k"
    # Audio pipeline limits and lanes (docs/audio.md, docs/security.md): decoded length
    # allowed (probe + ffmpeg -t), the wall-clock bound of one pipeline job, the ffmpeg slots
    # of ordinary work (uploads, typed bulletins) and of emergency work (CAP, emergency TTS,
    # emergency uploads: a lane ordinary work never occupies), and the niceness of ordinary
    # ffmpeg so it cannot starve the emergency lane of CPU.
    media_max_duration_s: float = Field(default=1800.0, gt=0)
    media_emergency_max_duration_s: float = Field(default=300.0, gt=0)
    media_job_timeout_s: float = Field(default=600.0, gt=0)
    media_slots: int = Field(default=2, ge=1, le=64)
    media_emergency_slots: int = Field(default=2, ge=1, le=64)
    media_ordinary_niceness: int = Field(default=10, ge=0, le=19)
    # Text-to-speech (docs/audio.md). Piper voices by model path, e.g.
    # COMMUNECAST_TTS_PIPER_MODELS='{"vi-north": "/opt/piper/vi_VN-vais1000-medium.onnx"}';
    # voices without a model use espeak-ng.
    tts_max_chars: int = Field(default=5000, ge=100, le=50000)
    tts_timeout_s: float = Field(default=120.0, gt=0, le=1800)
    tts_espeak_executable: str = "espeak-ng"
    tts_piper_executable: str = "piper"
    tts_piper_models: dict[str, Path] = Field(default_factory=dict)
    # Emergency broadcasts (docs/emergency.md): the volume they play at, and the lead from
    # request to the synchronized start (learnt from earlier emergencies' ack times, plus a
    # media-fetch estimate; emergency_lead_s fixes it instead).
    emergency_volume: int = Field(default=100, ge=0, le=100)
    emergency_lead_s: float | None = Field(default=None, ge=0.1, le=60)
    emergency_lead_min_s: float = Field(default=0.5, ge=0.1, le=60)
    emergency_lead_max_s: float = Field(default=10.0, ge=0.1, le=120)
    emergency_lead_margin_s: float = Field(default=0.35, ge=0, le=10)
    emergency_default_delivery_s: float = Field(default=0.25, ge=0, le=30)
    emergency_default_per_station_ms: float = Field(default=0.5, ge=0, le=100)
    emergency_media_bytes_per_s: float = Field(default=50e6, gt=0)
    emergency_media_requests_per_s: float = Field(default=200.0, gt=0)  # GET /media/<sha> served
    # Audio inside the PLAY (docs/emergency.md): a fresh clip up to this size travels in the signed
    # command instead of N downloads (0: never; protocol/limits.py caps it). The lead allows for the
    # broker handing the bigger PLAY to every station at this rate: the broker host's network
    # (1 Gbit/s by default; on loopback Mosquitto queued 1,000 x 220 kB in 0.23 s).
    emergency_inline_max_bytes: int = Field(default=INLINE_MEDIA_MAX_BYTES, ge=0, le=INLINE_MEDIA_MAX_BYTES)
    emergency_inline_bytes_per_s: float = Field(default=125e6, gt=0)
    horizon_days: int = Field(default=8, ge=1, le=60)
    # Re-publish every station this often so recurring schedules roll forward (docs/schedules.md).
    horizon_refresh_hours: float = Field(default=6.0, gt=0, le=24 * 7)
    # Schedules (docs/security.md): at most this many plays a day, and a station's signed
    # desired state at most this big (checked on save/approve; trimmed at publish, logged).
    schedule_max_per_day: int = Field(default=48, ge=1, le=24 * 60)
    desired_state_max_bytes: int = Field(default=512 * 1024, ge=16 * 1024, le=MAX_PACKET_SIZE - 64 * 1024)
    token_ttl_hours: int = 12
    # First start: create the 'admin' account with this password if it does not exist.
    admin_password: str | None = None
    # Web panel (docs/panel.md): browser sessions.
    session_ttl_hours: int = Field(default=12, ge=1, le=24 * 30)
    # Failed logins, panel and API alike (controller/services/auth.py): after this many free
    # failures per username, a wait of login_delay_s doubling with each further failure up to
    # login_max_delay_s; per client address likewise with its own count and cap. The account
    # cap is low so that a stranger cannot keep an operator out for long; the address cap is
    # high so that one address guesses slowly. Counters are forgotten login_forget_s after
    # their last failure and wait.
    login_max_failures: int = Field(default=5, ge=1)
    login_delay_s: float = Field(default=15.0, ge=1, le=3600)
    login_max_delay_s: float = Field(default=300.0, ge=1, le=24 * 3600)
    login_address_max_failures: int = Field(default=3, ge=1)
    login_address_max_delay_s: float = Field(default=3600.0, ge=1, le=7 * 24 * 3600)
    login_forget_s: float = Field(default=900.0, ge=1, le=30 * 24 * 3600)
    # scrypt cost (N) of new password hashes (controller/core/security.py). Keep the default:
    # the test suite lowers it to 2**10 (tests/conftest.py), as it makes ~2,000 hashes.
    password_scrypt_n: int = Field(default=2**14, ge=2**10, le=2**20)
    # /docs, /redoc and /openapi.json without a login (dev, demo). Production: set False,
    # then they need a panel session or a bearer token.
    api_docs_public: bool = True
    cookie_secure: bool | None = None  # None: Secure when the request came over HTTPS
    # Streamed broadcasts (docs/live.md). Stations relay only these sources: an exact URL, or
    # every URL under one that ends in "/". JSON list, e.g. '["http://radio.example/vov1.mp3"]'.
    relay_sources: list[str] = Field(default_factory=list)
    live_max_minutes: int = Field(default=60, ge=1, le=24 * 60)  # a live session ends by itself then

    # Station health (docs/health.md): telemetry storage, alarm rules, notifications, /metrics.
    telemetry_raw_days: float = Field(default=2.0, gt=0, le=30)  # raw samples, then 5-min rollups
    telemetry_rollup_days: float = Field(default=90.0, gt=0, le=3650)
    health_tick_s: float = Field(default=5.0, gt=0, le=300)  # offline check, rollups, retention
    alarm_offline_after_s: float = Field(default=300.0, gt=0)
    alarm_mains_min_v: float = 180.0  # below: mains loss; clears at +15 V
    alarm_mains_for_s: float = Field(default=30.0, ge=0)
    alarm_idle_current_a: float = 0.3  # playing with the relay on but at most this: cut speaker line
    alarm_speaker_line_for_s: float = Field(default=0.0, ge=0)
    alarm_cabinet_max_c: float = 60.0  # above: overheating; clears 5 °C lower
    alarm_overheat_for_s: float = Field(default=60.0, ge=0)
    alarm_clock_offset_max_ms: float = 100.0  # |offset| above: clock alarm; clears at 80 %
    alarm_clock_for_s: float = Field(default=60.0, ge=0)
    alarm_disk_min_mb: float = 500.0  # free space below: disk low; clears at +20 %
    alarm_disk_for_s: float = Field(default=300.0, ge=0)
    alarm_led_for_s: float = Field(default=60.0, ge=0)
    # Notifications: webhooks (JSON POST, HMAC-SHA256 signed when a secret is set) and e-mail.
    alarm_webhook_urls: list[str] = Field(default_factory=list)
    alarm_webhook_secret: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False  # the server's certificate is verified (system CAs or smtp_ca_file)
    smtp_ca_file: Path | None = None  # PEM CA for a mail server with a private CA
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "communecast@localhost"
    alarm_email_to: list[str] = Field(default_factory=list)
    # More notifiers: "module:factory" paths, each factory(settings) -> Notifier.
    alarm_notifiers: list[str] = Field(default_factory=list)
    # Alarms where people are (issue 20 item 9, docs/health.md "Per-user SMS and Zalo"): each user
    # sets their number, Zalo user id, channels and quiet hours (account page). SMS goes through a
    # GSM modem on this pyserial URL (/dev/ttyUSB2, socket://host:port); none: no SMS.
    alarm_sms_port: str | None = None
    alarm_sms_baudrate: int = Field(default=115200, ge=1200)
    alarm_sms_attempts: int = Field(default=3, ge=1, le=10)
    alarm_sms_retry_s: float = Field(default=2.0, ge=0, le=300)
    # Zalo Official Account messages. Secrets only from the environment, never the repository:
    # COMMUNECAST_ZALO_OA_APP_ID, _ZALO_OA_SECRET_KEY and _ZALO_OA_REFRESH_TOKEN (the first refresh
    # token: the controller refreshes the access token itself and keeps the rotated pair in the
    # database, table zalo_oa_tokens, services/alarms/zalo_tokens.py), or only
    # COMMUNECAST_ZALO_OA_ACCESS_TOKEN (a fixed token, expires in ~25 h). None of them: no Zalo.
    zalo_oa_url: str = "https://openapi.zalo.me/v3.0/oa/message/cs"
    zalo_oa_access_token: SecretStr | None = None
    zalo_oa_app_id: str | None = None
    zalo_oa_secret_key: SecretStr | None = None
    zalo_oa_refresh_token: SecretStr | None = None
    zalo_oauth_url: str = "https://oauth.zaloapp.com/v4/oa/access_token"
    # Refresh this long before the access token expires (Zalo: expires_in ~90,000 s); the leader
    # checks every zalo_token_check_s, so an idle installation keeps its refresh token alive too.
    zalo_token_refresh_margin_s: float = Field(default=3600.0, ge=0, le=86400)
    zalo_token_check_s: float = Field(default=300.0, gt=0, le=86400)
    zalo_attempts: int = Field(default=4, ge=1, le=10)
    zalo_retry_s: float = Field(default=1.0, ge=0, le=300)
    # Kinds that reach people also during their quiet hours; the rest waits for the digest the
    # dispatch-lease holder sends when a user's quiet hours end (checked this often).
    alarm_critical_kinds: list[str] = Field(default_factory=lambda: ["offline", "mains_loss"])
    alarm_digest_check_s: float = Field(default=30.0, gt=0, le=3600)
    # /metrics: with a token, a bearer token is required; without, only loopback clients get it.
    metrics_token: str | None = None

    # CAP 1.2 alert input (docs/cap.md). Geocode schemes whose values are our Area.code
    # (Vietnamese administrative unit codes), and "valueName=value" -> Area.code for others.
    cap_geocode_names: list[str] = Field(
        default_factory=lambda: ["DVHC", "MA_DVHC", "VN-DVHC", "MA_XA", "MA_PHUONG_XA", "MA_TINH"])
    cap_geocode_map: dict[str, str] = Field(default_factory=dict)
    cap_max_bytes: int = Field(default=512 * 1024, ge=4096, le=10 * 1024 * 1024)
    cap_voice_vi: str = "vi-north"  # the voice for Vietnamese alerts
    # A normal-priority alert waits for approval as a draft starting this far ahead.
    cap_draft_lead_minutes: float = Field(default=30.0, gt=0, le=24 * 60)

    # Nightly backup (docs/deployment.md, "Backup and restore"): with backup_dir set, the replica
    # holding the dispatch lease writes an encrypted backup there every day at backup_at (local
    # time in `timezone`, HH:MM) and keeps the backup_keep newest. The passphrase is
    # COMMUNECAST_BACKUP_PASSPHRASE (also what `communecast backup` uses when set).
    backup_dir: Path | None = None
    backup_at: str = "02:30"
    backup_keep: int = Field(default=7, ge=1, le=1000)
    backup_passphrase: SecretStr | None = None

    @property
    def zalo_refreshable(self) -> bool:
        """App id, secret key and a first refresh token: the controller keeps the token fresh."""
        return bool(self.zalo_oa_app_id and self.zalo_oa_secret_key is not None
                    and self.zalo_oa_refresh_token is not None)  # fmt: skip

    @property
    def zalo_enabled(self) -> bool:
        return self.zalo_oa_access_token is not None or self.zalo_refreshable

    @field_validator("backup_at")
    @classmethod
    def _clock_time(cls, v: str) -> str:
        hh, sep, mm = v.strip().partition(":")
        if not (sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60 and len(mm) == 2):
            raise ValueError(f"backup_at {v!r}: a local time as HH:MM, e.g. 02:30")
        return f"{int(hh):02d}:{mm}"

    @field_validator("password_scrypt_n")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"password_scrypt_n {v}: scrypt needs a power of two, e.g. {2**14}")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        """A misspelt zone fails at start-up, not in the first report someone downloads."""
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as {DEFAULT_TIMEZONE})") from exc
        return v

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
