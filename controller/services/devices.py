"""Stations: create, list, issue credentials and the agent's configuration."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, device_for_action, require_area_action
from controller.core.security import mosquitto_password_hash, new_secret
from controller.db.models import Area, Device, User
from controller.db.statuses import AreaLevel
from controller.schemas.devices import DeviceCreate
from controller.services import audit
from controller.services.targets import groups_of


def new_uid(kind: str) -> str:
    return f"{'spk' if kind == 'speaker' else 'led'}-{secrets.token_hex(4)}"


def create(session: Session, req: DeviceCreate, user_id: int | None, *, actor: User | None = None) -> Device:
    """A new station. `actor` (the API, the panel, the CSV import) must manage the commune:
    a technician of Xã A creating a station in Xã B is refused (403) before anything is stored."""
    area = session.get(Area, req.commune_id)
    if area is None or area.level != AreaLevel.COMMUNE:
        raise NotFound("area.not_found", id=req.commune_id)
    if actor is not None:
        require_area_action(session, actor, Action.DEVICE_MANAGE, req.commune_id)
    if req.village_id is not None:
        check_village(session, req.village_id, req.commune_id)
    device = Device(
        uid=new_uid(req.kind), name=req.name, kind=req.kind, commune_id=req.commune_id,
        village_id=req.village_id, lat=req.lat, lon=req.lon, tags=req.tags, reported={},
    )  # fmt: skip
    session.add(device)
    session.flush()
    audit.record(session, user_id, "device.create", "device", device.id, name=req.name)
    return device


def check_village(session: Session, village_id: int, commune_id: int) -> None:
    """422 unless `village_id` is a village of the station's own commune."""
    village = session.get(Area, village_id)
    if village is None or village.level != AreaLevel.VILLAGE or village.parent_id != commune_id:
        raise UserError(422, "device.village_mismatch", id=village_id)


def set_village(session: Session, device_id: int, village_id: int | None, actor: User) -> Device:
    """Name (or clear) the village a station stands in; technicians and admins of its commune."""
    device = device_for_action(session, actor, Action.DEVICE_MANAGE, device_id)
    if village_id is not None:
        check_village(session, village_id, device.commune_id)
    device.village_id = village_id
    audit.record(session, actor.id, "device.village", "device", device.id, village_id=village_id)
    return device


def issue_credentials(
    session: Session, device_id: int, user_id: int | None, *, actor: User | None = None
) -> tuple[Device, str]:
    """A fresh broker password; the old one stops working when the broker reloads."""
    if actor is not None:
        device_for_action(session, actor, Action.DEVICE_MANAGE, device_id)
    device = session.get(Device, device_id)
    if device is None or device.retired_at is not None:
        raise NotFound("device.not_found", id=device_id)
    password = new_secret()
    device.mqtt_password_hash = mosquitto_password_hash(password)
    audit.record(session, user_id, "device.credentials", "device", device.id)
    return device, password


def agent_config(
    session: Session,
    device: Device,
    password: str,
    *,
    mqtt_host: str,
    mqtt_port: int,
    controller_url: str,
    public_key: str,
) -> dict[str, Any]:
    return {
        "uid": device.uid,
        "kind": device.kind,
        "mqtt_host": mqtt_host,
        "mqtt_port": mqtt_port,
        "mqtt_username": device.uid,
        "mqtt_password": password,
        "controller_url": controller_url,
        "controller_public_keys": [public_key],
        "groups": groups_of(session, device),
    }


def to_json(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "uid": device.uid,
        "name": device.name,
        "kind": device.kind,
        "commune_id": device.commune_id,
        "village_id": device.village_id,
        "tags": device.tags or [],
        "lat": device.lat,
        "lon": device.lon,
        "online": device.online,
        "last_seen": device.last_seen.isoformat() if device.last_seen else None,
        "retired": device.retired_at is not None,
    }
