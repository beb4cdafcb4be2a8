"""Enrollment: one-time codes, redeeming them for per-station broker credentials, retire.

A code is 10 characters from an alphabet without look-alikes (no 0/O, 1/I/L), shown as
two groups of five (K7QM2-XW9RT): about 49 bits, typed on a phone in a few seconds.
Only an HMAC of it (key in the data dir, 0600) is stored. It expires (24 h by default),
works once (a compare-and-set on `used_at`), and wrong guesses are counted per client
address: past the limit the address gets 429 until the window passes.

The broker learns about a station's account before the database commits (dynamic
security) or right after (password/ACL files), so a failure leaves nothing half done.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, device_for_action
from controller.core.security import mosquitto_password_hash, new_secret
from controller.db.models import Area, Device, User
from controller.db.models_enrollment import EnrollmentCode, EnrollmentFailure
from controller.db.statuses import AreaLevel
from controller.i18n import formats
from controller.services import audit, devices, dispatch
from controller.services.areas import fold
from controller.services.broker_auth import DynsecAdmin, DynsecError
from controller.services.targets import groups_of
from protocol import topics

if TYPE_CHECKING:
    from controller.core.config import Settings
    from controller.services.station_commands import CommandBus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerAccounts:
    """Where station accounts live: Mosquitto's dynamic-security plugin (`admin`), or the
    password/ACL files this controller rewrites (`sync_files`; a no-op when it manages none)."""

    admin: DynsecAdmin | None
    sync_files: Callable[[], None]

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
CSV_MAX_ROWS = 5000


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    half = CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def normalize(code: str) -> str | None:
    """What the technician typed, as stored: case, spaces and dashes do not matter."""
    cleaned = "".join(ch for ch in code.upper() if ch not in " -_\t")
    if len(cleaned) != CODE_LENGTH or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def load_pepper(path: Path) -> bytes:
    """The HMAC key for codes, created on first use with owner-only permissions."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another replica or worker won the race
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


def code_hash(pepper: bytes, normalized: str) -> str:
    return hmac.new(pepper, normalized.encode(), hashlib.sha256).hexdigest()


def people_time(instant: datetime, tz: str) -> str:
    """HH:MM dd/mm/yyyy in the controller's time zone (Settings.timezone), as messages show it."""
    return formats.time_date(instant, tz)


@dataclass(frozen=True)
class IssuedCode:
    device_id: int
    code: str  # formatted, shown once
    expires_at: datetime


def issue_code(
    session: Session, device_id: int, user_id: int | None, *, pepper: bytes, ttl: timedelta,
    now: datetime | None = None, actor: User | None = None,
) -> IssuedCode:
    """A fresh code for the station; any earlier unused code stops working. With `actor`, the
    station must lie in their area (a code is the credential that puts a Pi on that station)."""
    now = now or datetime.now(UTC)
    if actor is not None:
        device_for_action(session, actor, Action.DEVICE_MANAGE, device_id)
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound("device.not_found", id=device_id)
    if device.retired_at is not None:
        raise UserError(409, "device.retired", id=device_id)
    session.execute(
        update(EnrollmentCode)
        .where(EnrollmentCode.device_id == device_id, EnrollmentCode.used_at.is_(None),
               EnrollmentCode.revoked_at.is_(None))
        .values(revoked_at=now)
    )  # fmt: skip
    code = new_code()
    session.add(EnrollmentCode(device_id=device_id, code_hash=code_hash(pepper, code), created_at=now,
                               created_by=user_id, expires_at=now + ttl))
    audit.record(session, user_id, "device.enrollment_code", "device", device_id,
                 expires_at=(now + ttl).isoformat())
    return IssuedCode(device_id, format_code(code), now + ttl)


def check_rate(session: Session, source: str, *, max_failures: int, window_s: int,
               now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=window_s)
    failures = session.scalar(
        select(func.count()).select_from(EnrollmentFailure)
        .where(EnrollmentFailure.source == source, EnrollmentFailure.at > since)
    ) or 0  # fmt: skip
    if failures >= max_failures:
        oldest = session.scalar(
            select(func.min(EnrollmentFailure.at))
            .where(EnrollmentFailure.source == source, EnrollmentFailure.at > since)
        ) or now  # fmt: skip
        wait_s = max((oldest + timedelta(seconds=window_s) - now).total_seconds(), 1)
        raise UserError(429, "enroll.too_many_attempts", minutes=max(1, round(wait_s / 60)))


def record_failure(session: Session, source: str, *, window_s: int, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    session.add(EnrollmentFailure(source=source[:64], at=now))
    # Keep the table small: what is older than the window no longer counts anywhere.
    session.execute(delete(EnrollmentFailure).where(EnrollmentFailure.at < now - timedelta(seconds=window_s)))


def redeem(session: Session, code: str, source: str, *, pepper: bytes, tz: str,
           now: datetime | None = None) -> tuple[Device, str]:
    """Spend the code: a new broker password for its station (not yet committed)."""
    now = now or datetime.now(UTC)
    normalized = normalize(code)
    if normalized is None:
        raise UserError(400, "enroll.code_malformed")
    row = session.scalars(
        select(EnrollmentCode).where(EnrollmentCode.code_hash == code_hash(pepper, normalized))
    ).first()
    if row is None:
        raise UserError(404, "enroll.code_unknown")
    if row.used_at is not None:
        raise UserError(409, "enroll.code_used", used_at=people_time(row.used_at, tz))
    if row.revoked_at is not None:
        raise UserError(410, "enroll.code_revoked")
    if row.expires_at <= now:
        raise UserError(410, "enroll.code_expired", expires_at=people_time(row.expires_at, tz))
    device = session.get(Device, row.device_id)
    if device is None or device.retired_at is not None:
        raise UserError(410, "enroll.device_retired", uid=device.uid if device else row.device_id)
    # Compare-and-set: of two simultaneous requests with one code, exactly one wins.
    won = session.execute(
        update(EnrollmentCode)
        .where(EnrollmentCode.id == row.id, EnrollmentCode.used_at.is_(None))
        .values(used_at=now, used_from=source[:64])
    ).rowcount  # type: ignore[attr-defined]
    if won != 1:
        raise UserError(409, "enroll.code_used", used_at=people_time(now, tz))
    password = new_secret()
    device.mqtt_password_hash = mosquitto_password_hash(password)
    audit.record(session, None, "device.enroll", "device", device.id, source=source[:64])
    dispatch.stations_changed(session, [device.id])  # its desired state, retained, waits on connect
    return device, password


def agent_config_for(
    s: Settings, public_key: str, session: Session, device: Device, password: str
) -> dict[str, Any]:
    config = devices.agent_config(
        session, device, password,
        mqtt_host=s.agent_mqtt_host or s.mqtt_host, mqtt_port=s.agent_mqtt_port or s.mqtt_port,
        controller_url=s.base_url, public_key=public_key,
    )  # fmt: skip
    if s.agent_mqtt_tls:
        config.update(agent_tls_config(s))
    return config


def agent_tls_config(s: Settings) -> dict[str, Any]:
    """TLS for the station (docs/enrollment.md, TLS): the broker's TLS port and, when the
    controller has one, the CA certificate (PEM) the agent stores next to its config."""
    out: dict[str, Any] = {
        "mqtt_tls": True,
        "mqtt_port": s.agent_mqtt_port or (s.mqtt_port if s.mqtt_tls else 8883),
        "mqtt_tls_server_name": s.agent_mqtt_tls_server_name,
    }
    ca_file = s.agent_mqtt_ca_file or s.mqtt_ca_file
    if ca_file is not None:
        try:
            pem = Path(ca_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            log.error("cannot read the broker CA for agents (%s): %s", ca_file, exc)
            raise UserError(503, "enroll.broker_unavailable") from exc
        if "-----BEGIN CERTIFICATE-----" not in pem:
            log.error("%s holds no PEM certificate: stations could not verify the broker", ca_file)
            raise UserError(503, "enroll.broker_unavailable")
        out["mqtt_ca_pem"] = pem
    return out


def _call_broker(fn: Any, *args: Any) -> None:
    """Run a broker coroutine from a sync route (FastAPI runs those in a worker thread)."""
    import anyio.from_thread

    try:
        anyio.from_thread.run(fn, *args)
    except DynsecError as exc:
        log.warning("broker refused or unreachable: %s", exc)
        raise UserError(503, "enroll.broker_unavailable") from exc


def commit_account(broker: BrokerAccounts, session: Session, device: Device, password: str) -> None:
    """Give the station's new password to the broker and commit, in the safe order."""
    commit_accounts(broker, session, [(device, password)])


def commit_accounts(broker: BrokerAccounts, session: Session, accounts: list[tuple[Device, str]]) -> None:
    """The same for many stations: one dynamic-security request, or one rewrite of the files."""
    if broker.admin is not None:
        stations = [(d.uid, password, groups_of(session, d), d.name) for d, password in accounts]
        _call_broker(broker.admin.put_stations, stations)
        session.commit()
    else:
        session.commit()
        broker.sync_files()


def retire(broker: BrokerAccounts, session: Session, device_id: int, user_id: int | None,
           now: datetime | None = None, *, actor: User | None = None) -> Device:
    """Revoke the station now: the broker drops its session and refuses it from then on.
    With `actor`, only a station in their area (403 otherwise, nothing changes)."""
    now = now or datetime.now(UTC)
    if actor is not None:
        device_for_action(session, actor, Action.DEVICE_MANAGE, device_id)
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound("device.not_found", id=device_id)
    if device.retired_at is None:
        device.retired_at = now
        device.mqtt_password_hash = None
        device.online = False
        session.execute(
            update(EnrollmentCode)
            .where(EnrollmentCode.device_id == device_id, EnrollmentCode.used_at.is_(None),
                   EnrollmentCode.revoked_at.is_(None))
            .values(revoked_at=now)
        )  # fmt: skip
        audit.record(session, user_id, "device.retire", "device", device_id, uid=device.uid)
    session.flush()
    if broker.admin is not None:
        _call_broker(broker.admin.remove_station, device.uid)
        session.commit()
    else:
        session.commit()
        broker.sync_files()
    return device


def clear_retained(bus: CommandBus, uid: str) -> None:
    """Drop the retired station's retained desired state (its schedule) from the broker.

    Best effort: nobody may read it any more; this just frees the broker. The retained
    reported state stays: it is the Last Will `{"online": false}` the kick produced.
    """
    import functools

    import anyio.from_thread

    topic = topics.desired(uid)
    try:
        anyio.from_thread.run(functools.partial(bus.publish, topic, b"", qos=1, retain=True))
    except Exception as exc:  # the broker being away must not fail a retire that succeeded
        log.info("could not clear retained %s: %s", topic, exc)


# --- CSV import --------------------------------------------------------------------------


@dataclass
class CsvProblem:
    line: int
    problem: str
    column: str = ""  # the column at fault, and what is wrong (pydantic's error type or "no_commune"):
    kind: str = ""    # the panel words it in Vietnamese from these (routes_stations.py)


def _village(session: Session, commune_id: int, text: str) -> int | None:
    villages = session.scalars(select(Area).where(Area.level == AreaLevel.VILLAGE,
                                                  Area.parent_id == commune_id))
    return next((v.id for v in villages if (v.code and v.code == text) or fold(v.name) == fold(text)), None)


def parse_csv(session: Session, data: bytes) -> tuple[list[devices.DeviceCreate], list[CsvProblem]]:
    """Rows -> validated requests, or the problems by line (nothing is stored either way).

    Columns: name, kind (speaker|led), commune_id or commune_code, village (optional: name or code
    of a village of that commune), lat, lon, tags (';'-separated).
    """
    try:
        text = data.decode("utf-8-sig")
        reader = csv.DictReader(io.StringIO(text))
        header = {(h or "").strip().lower() for h in reader.fieldnames or []}
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(400, "device.csv_unreadable") from exc
    if not {"name", "kind"} <= header or not header & {"commune_id", "commune_code"}:
        raise UserError(400, "device.csv_unreadable")
    codes = {a.code: a.id for a in session.scalars(select(Area).where(Area.level == AreaLevel.COMMUNE))
             if a.code}
    out: list[devices.DeviceCreate] = []
    problems: list[CsvProblem] = []
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise UserError(400, "device.csv_unreadable") from exc
    if len(rows) > CSV_MAX_ROWS:
        raise UserError(413, "device.csv_too_large", limit=CSV_MAX_ROWS)
    for index, raw in enumerate(rows):
        line = index + 2  # the header is line 1
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        commune_id: int | str | None = row.get("commune_id") or None
        if commune_id is None and row.get("commune_code"):
            commune_id = codes.get(row["commune_code"])
            if commune_id is None:
                problems.append(CsvProblem(line, f"commune_code {row['commune_code']!r}: no such commune",
                                           "commune_code", "no_commune"))
                continue
        try:
            req = devices.DeviceCreate(
                name=row.get("name", ""), kind=row.get("kind", ""), commune_id=commune_id,  # type: ignore[arg-type]
                lat=row.get("lat") or None, lon=row.get("lon") or None,  # type: ignore[arg-type]
                tags=[t.strip() for t in row.get("tags", "").split(";") if t.strip()],
            )  # fmt: skip
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err.get("loc", ()))
                problems.append(CsvProblem(line, f"{field}: {err['msg']}", field, str(err.get("type", ""))))
            continue
        area = session.get(Area, req.commune_id)
        if area is None or area.level != AreaLevel.COMMUNE:
            problems.append(CsvProblem(line, f"commune_id {req.commune_id}: no such commune",
                                       "commune_id", "no_commune"))
            continue
        if row.get("village"):  # a village of that commune, by name (diacritics ignored) or code
            village = _village(session, area.id, row["village"])
            if village is None:
                why = f"village {row['village']!r}: no such village in {area.name}"
                problems.append(CsvProblem(line, why, "village", "no_village"))
                continue
            req = req.model_copy(update={"village_id": village})
        out.append(req)
    return out, problems
