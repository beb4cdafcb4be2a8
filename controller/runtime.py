"""Everything a running controller holds, built once at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from controller import horizon_sources
from controller.core.config import Settings
from controller.core.security import mosquitto_password_hash, set_scrypt_cost
from controller.db import id_floors
from controller.db.models import Device
from controller.db.session import Database
from controller.mqtt.bus import MqttBus
from controller.mqtt.receipts import ReceiptSender
from controller.mqtt.tls import broker_tls_context
from controller.services import broker_auth, emergency, metrics, seed, signing_keys, telemetry
from controller.services.alarms.digest import QuietDigest
from controller.services.alarms.engine import AlarmEngine
from controller.services.alarms.notify import NotificationHub, notifiers_from_settings
from controller.services.alarms.personal import PersonalNotifier, ZaloChannel, personal_notifiers
from controller.services.alarms.zalo_tokens import ZaloTokenStore
from controller.services.audio_lanes import AudioLanes
from controller.services.backup.nightly import NightlyBackup
from controller.services.broker_outages import OutageRecorder
from controller.services.desired_state import DesiredStatePublisher
from controller.services.dispatch import default_holder
from controller.services.emergency import EmergencyDeps
from controller.services.enrollment import BrokerAccounts
from controller.services.ingest import Ingest
from controller.services.media import MediaStore
from controller.services.provincial import outbox as provincial_outbox
from controller.services.provincial.config import ProvincialSettings
from controller.services.provincial.connector import ProvincialConnector
from controller.services.station_commands import StationCommands
from controller.services.tts import TtsService
from protocol.signing import KeyPair, Signer

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    # The active signing key; swapped in place on rotation (services/signing_keys.py KeyringWatcher).
    signer: Signer
    media: MediaStore
    bus: MqttBus
    ingest: Ingest
    publisher: DesiredStatePublisher
    # One per running controller (the TTS route, CAP alerts, emergencies), built from its settings.
    tts: TtsService
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Station accounts live in Mosquitto's dynamic-security plugin (None: files or nothing).
    broker_admin: broker_auth.DynsecAdmin | None = None
    # Reporting to the province's source system (docs/provincial.md); None when not configured.
    provincial: ProvincialConnector | None = None
    # Station health (docs/health.md): alarm engine and its notifications.
    alarms: AlarmEngine | None = None
    notifications: NotificationHub | None = None

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        # 0700, also when an older version left it 0755 (issue 16; umask 077: communecast.private)
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(settings.data_dir, 0o700)
        set_scrypt_cost(settings.password_scrypt_n)
        db = Database(settings.resolved_database_url)
        db.migrate()
        restored = settings.data_dir / id_floors.RESTORED_MARKER
        if restored.exists():  # the first start after `communecast restore` (controller/db/id_floors.py)
            db.raise_id_floors()
            restored.unlink()
        if settings.admin_password:
            with db.session() as s:
                seed.ensure_admin(s, settings.admin_password, reset=False)
        keys_dir = settings.signing_key_path.parent
        with db.session() as s:
            signing_keys.ensure_genesis(s, keys_dir, settings.signing_key_path)
        with db.session() as s:
            signer = Signer(signing_keys.active_pair(s, keys_dir, settings.signing_key_path))
        notifications = NotificationHub(notifiers_from_settings(settings) + personal_notifiers(db, settings))
        alarms = AlarmEngine(db, settings, notifications)
        provincial = ProvincialSettings()
        tls = broker_tls_context(settings)  # None: plain MQTT
        bus = MqttBus(
            settings.mqtt_host,
            settings.mqtt_port,
            client_id=settings.mqtt_client_id,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            # The ingest (below) needs the bus for its receipts; the bus calls this once running.
            on_batch=lambda batch: ingest.handle_batch(batch),
            share_group=settings.mqtt_share_group,
            tls_context=tls,
        )
        ingest = Ingest(db, after_store=alarms.submit,
                        play_log_hook=provincial_outbox.enqueue_play_logs if provincial.enabled else None,
                        receipts=ReceiptSender(bus.send_now))
        publisher = DesiredStatePublisher(
            db, bus, signer, timedelta(days=settings.horizon_days),
            sources=horizon_sources.standard(),
            holder=default_holder(settings.mqtt_client_id),
            lease_ttl=timedelta(seconds=settings.dispatch_lease_s),
            max_bytes=settings.desired_state_max_bytes,
        )
        media = MediaStore(
            settings.media_dir, max_bytes=settings.media_max_bytes, bitrate=settings.media_bitrate,
            lanes=AudioLanes.from_settings(settings),
        )
        tts = TtsService.from_settings(settings)
        rt = cls(settings, db, signer, media, bus, ingest, publisher, tts,
                 notifications=notifications, alarms=alarms)
        if provincial.enabled:
            rt.provincial = ProvincialConnector(db, provincial, is_leader=lambda: publisher.is_leader)
        metrics.attach_database(db)
        if settings.broker_dynsec:
            rt.broker_admin = broker_auth.DynsecAdmin(
                settings.mqtt_host, settings.mqtt_port, settings.mqtt_username, settings.mqtt_password,
                tls_context=tls,
            )
        return rt

    @property
    def keys(self) -> KeyPair:
        """The active signing key (what enrollment hands a new station, with its fingerprint)."""
        return self.signer.keys

    def keyring_watcher(self) -> signing_keys.KeyringWatcher:
        """Follows `signing_keys` (rotation, revocation by `communecast keys` or another replica)."""
        return signing_keys.KeyringWatcher(
            self.db, self.bus, self.signer, self.settings.signing_key_path.parent,
            self.settings.signing_key_path, self.settings.keyring_poll_s, self._all_stations_changed)

    def _all_stations_changed(self) -> None:
        with self.db.session() as s:
            ids = list(s.scalars(select(Device.id).where(Device.retired_at.is_(None))))
        self.publisher.mark_dirty(ids)

    @property
    def station_commands(self) -> StationCommands:
        """Signed commands straight to stations (diagnostics, updates)."""
        return StationCommands(self.signer, self.bus)

    @property
    def emergency_deps(self) -> EmergencyDeps:
        """What emergencies (and CAP alerts, which start them) use."""
        return EmergencyDeps(settings=self.settings, signer=self.signer, bus=self.bus, media=self.media,
                             tts=self.tts, db=self.db, write_lock=self.ingest.write_lock)

    @property
    def broker_accounts(self) -> BrokerAccounts:
        """Where station accounts are written (enrollment, retirement)."""
        return BrokerAccounts(self.broker_admin, self.sync_broker_credentials)

    @property
    def enrollment_key_path(self) -> Path:
        return self.settings.data_dir / "keys" / "enrollment_hmac.key"

    async def start(self) -> None:
        self.media.delete_tmp()
        self.tasks = [
            asyncio.create_task(self.bus.run(), name="mqtt"),
            asyncio.create_task(self.ingest.run(), name="ingest"),
            asyncio.create_task(self.publisher.run(), name="desired-state"),
            # Key rotation and revocation (docs/security.md): sign with the active key, keep the
            # chain retained on cc/v1/keys.
            asyncio.create_task(self.keyring_watcher().run(), name="signing-keys"),
        ]
        self.tasks.append(asyncio.create_task(self._roll_horizon(), name="horizon-roll"))
        self.tasks.append(asyncio.create_task(self._recover_emergencies(), name="emergency-recovery"))
        outages = OutageRecorder(self.db, self.bus, observer=self.settings.mqtt_client_id)
        self.tasks.append(asyncio.create_task(outages.run(), name="broker-outages"))
        if self.provincial is not None:
            self.tasks.append(asyncio.create_task(self.provincial.run(), name="provincial"))
        if self.alarms is not None and self.notifications is not None:
            self.tasks += [asyncio.create_task(self.notifications.run(), name="alarm-notify"),
                           asyncio.create_task(self.alarms.run(), name="alarms"),
                           asyncio.create_task(self._telemetry_maintenance(), name="telemetry-rollup")]
            self._start_personal(self.notifications)
        if self.settings.backup_dir is not None:  # only the dispatch-lease holder backs up
            nightly = NightlyBackup(self.db, self.settings, is_leader=lambda: self.publisher.is_leader)
            self.tasks.append(asyncio.create_task(nightly.run(), name="nightly-backup"))
        if self.broker_admin is not None:
            self.tasks.append(asyncio.create_task(
                broker_auth.reconcile_dynsec(self.broker_admin, self.db), name="broker-reconcile"))
        # Re-assert every station's desired state: cheap, and it heals a broker that
        # lost its retained messages while we were down.
        with self.db.session() as s:
            ids = list(s.scalars(select(Device.id).where(Device.retired_at.is_(None))))
        self.publisher.mark_dirty(ids)

    def _start_personal(self, hub: NotificationHub) -> None:
        """The quiet-hours digest and the Zalo token refresh: work of the dispatch-lease holder
        (docs/health.md, "Per-user SMS and Zalo"); both also claim their rows in the database."""
        channels = [n.channel for n in hub.notifiers if isinstance(n, PersonalNotifier)]
        if not channels:
            return

        def leader() -> bool:
            return self.publisher.is_leader

        digest = QuietDigest(self.db, self.settings, channels, is_leader=leader)
        self.tasks.append(asyncio.create_task(digest.run(self.settings.alarm_digest_check_s),
                                              name="alarm-digest"))  # fmt: skip
        for channel in channels:
            if isinstance(channel, ZaloChannel) and isinstance(channel.tokens, ZaloTokenStore):
                self.tasks.append(asyncio.create_task(
                    channel.tokens.keep_fresh(leader, self.settings.zalo_token_check_s), name="zalo-token"))

    async def _roll_horizon(self) -> None:
        """Recurring schedules expand into a rolling horizon: re-publish every station now
        and then, so each keeps ≥ horizon_days - horizon_refresh_hours of plays offline."""
        period = self.settings.horizon_refresh_hours * 3600
        while True:
            await asyncio.sleep(period)
            try:
                with self.db.session() as s:
                    ids = list(s.scalars(select(Device.id).where(Device.retired_at.is_(None))))
                self.publisher.mark_dirty(ids)
            except Exception:
                log.exception("horizon roll failed; retrying next period")

    async def _recover_emergencies(self) -> None:
        """An emergency answered just before a crash gets its per-station rows (emergency.py)."""
        while True:
            if self.publisher.is_leader:
                try:
                    await asyncio.to_thread(emergency.recover_deliveries, self.db)
                except Exception:
                    log.exception("emergency recovery failed; trying again")
            await asyncio.sleep(emergency.RECOVER_EVERY_S)

    async def _telemetry_maintenance(self) -> None:
        """Roll up finished 5-minute buckets and prune old samples; only the dispatch-lease
        holder does it, so replicas do not race on the same buckets."""
        cfg = self.settings
        while True:
            await asyncio.sleep(cfg.health_tick_s)
            if not self.publisher.is_leader:
                continue

            def work() -> None:
                with self.db.session() as s:
                    telemetry.rollup(s)
                with self.db.session() as s:
                    telemetry.prune(s, raw_days=cfg.telemetry_raw_days, rollup_days=cfg.telemetry_rollup_days)

            try:
                await asyncio.to_thread(work)
            except Exception:
                log.exception("telemetry rollup failed; retrying next tick")

    async def stop(self) -> None:
        self.bus.stop()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.db.dispose()

    def broker_answering(self) -> bool:
        """The broker acknowledged a round trip in the last seconds (controller/mqtt/bus.py):
        what a new broadcast's response warns about when false."""
        return self.bus.answering()

    def sync_broker_credentials(self) -> None:
        """Rewrite the broker's password/ACL files when this controller manages them."""
        if self.settings.broker_auth_dir is None:
            return
        user = self.settings.mqtt_username or "communecast-controller"
        controller_hash = mosquitto_password_hash(self.settings.mqtt_password or "")
        with self.db.session() as s:
            passwd, acl = broker_auth.render(s, user, controller_hash)
        broker_auth.write(self.settings.broker_auth_dir, passwd, acl)
        broker_auth.reload_broker(self.settings.broker_pid_file)
