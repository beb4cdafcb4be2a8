"""Agent updates: sign a release manifest, store the wheel by hash, roll it out, track each station.

The manifest (version, wheel SHA-256, size, min agent version, created_at) is signed with
the controller key agents already trust; the UPDATE command carries it verbatim, and the
agent checks both signatures (envelope and manifest) and the wheel's hash before
installing anything (device_agents/common/updater.py). Rollouts pick stations by area
and/or a percentage; the percentage is a stable hash order per release, so 10 % then
50 % reaches a superset of the first stations.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.i18n import human_size
from controller.core.permissions import communes_in_scope, in_scope
from controller.db.models import Device, User
from controller.db.models_ops import UpdateBundle, UpdateRollout
from controller.schemas.updates import RolloutRequest
from controller.services import audit
from controller.services.targets import Targets, resolve
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import CommandKind, Event, EventKind, Priority
from protocol.ops import ManifestSignature, UpdateCommand, UpdateManifest, sign_manifest
from protocol.signing import Signer

if TYPE_CHECKING:
    from controller.services.station_commands import StationCommands

MAX_WHEEL_BYTES = 100 * 1024 * 1024
COMMAND_TTL = timedelta(hours=24)  # the broker queues it for a station that is briefly away
WHEEL_RE = re.compile(
    r"^communecast-(?P<version>[0-9][A-Za-z0-9.+]*)-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl$"
)
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){0,3}([a-z0-9.+-]*)$")
STATE_BY_EVENT = {EventKind.UPDATE_APPLIED: "applied", EventKind.UPDATE_ROLLED_BACK: "rolled_back",
                  EventKind.UPDATE_REFUSED: "refused"}


def updates_dir(data_dir: Path) -> Path:
    return data_dir / "updates"


def wheel_path(data_dir: Path, sha256: str) -> Path:
    return updates_dir(data_dir) / f"{sha256}.whl"


def make_manifest(wheel: Path, wheel_name: str, version: str, min_agent_version: str, signer: Signer,
                  sha256: str | None = None) -> tuple[UpdateManifest, str, ManifestSignature]:
    """The signed manifest for a wheel (shared by the API and `communecast update build`)."""
    if not WHEEL_RE.match(wheel_name):
        raise UserError(422, "update.not_a_wheel", name=wheel_name[:200])
    if not VERSION_RE.match(version) or not VERSION_RE.match(min_agent_version):
        raise UserError(422, "update.bad_version", version=version[:40])
    manifest = UpdateManifest(
        version=version, wheel=wheel_name, sha256=sha256 or _sha256(wheel), size=wheel.stat().st_size,
        min_agent_version=min_agent_version, created_at=datetime.now(UTC),
    )  # fmt: skip
    text, signature = sign_manifest(manifest, signer)
    return manifest, text, signature


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def create(signer: Signer, data_dir: Path, s: Session, user: User, source: BinaryIO, name: str,
           version: str | None, min_agent_version: str) -> UpdateBundle:
    """Store an uploaded wheel under its hash and record its signed manifest."""
    match = WHEEL_RE.match(name or "")
    if match is None:
        raise UserError(422, "update.not_a_wheel", name=(name or "")[:200])
    version = version or match["version"]
    if s.scalar(select(UpdateBundle.id).where(UpdateBundle.version == version)) is not None:
        raise UserError(409, "update.exists", version=version)
    folder = updates_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, suffix=".part")
    tmp = Path(tmp_name)
    try:
        h, total = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(1 << 20):
                total += len(chunk)
                if total > MAX_WHEEL_BYTES:
                    raise UserError(413, "update.too_large", limit=human_size(MAX_WHEEL_BYTES))
                h.update(chunk)
                out.write(chunk)
        sha = h.hexdigest()
        manifest, text, signature = make_manifest(tmp, name, version, min_agent_version, signer, sha)
        os.replace(tmp, wheel_path(data_dir, sha))
    finally:
        tmp.unlink(missing_ok=True)
    row = UpdateBundle(version=version, wheel_name=name, wheel_sha256=sha, size=manifest.size,
                       min_agent_version=min_agent_version, manifest=text,
                       signature=signature.model_dump(), created_by=user.id)  # fmt: skip
    s.add(row)
    try:
        s.flush()
    except IntegrityError as exc:  # a concurrent upload of the same version
        raise UserError(409, "update.exists", version=version) from exc
    audit.record(s, user.id, "update.upload", "update", row.id, version=version, sha256=sha)
    s.commit()
    return row


def get(s: Session, bundle_id: int) -> UpdateBundle:
    row = s.get(UpdateBundle, bundle_id)
    if row is None:
        raise NotFound("update.not_found", id=bundle_id)
    return row


def choose(s: Session, user: User, bundle: UpdateBundle, req: RolloutRequest) -> list[Device]:
    """Stations (speakers and LED boards) in the targets and the caller's area, then the percentage."""
    targets = req.targets or Targets(all=True)
    devices = resolve(s, targets, "speaker") + resolve(s, targets, "led")
    scope = communes_in_scope(s, user)
    if scope is not None:
        devices = [d for d in devices if d.commune_id in scope]
    ordered = sorted(devices, key=lambda d: hashlib.sha256(f"{bundle.version}:{d.uid}".encode()).hexdigest())
    return ordered[: math.ceil(len(ordered) * req.percent / 100)]


async def rollout(
    link: StationCommands, s: Session, user: User, bundle_id: int, req: RolloutRequest
) -> dict[str, Any]:
    bundle = get(s, bundle_id)
    chosen = choose(s, user, bundle, req)
    if not chosen:
        raise UserError(422, "update.no_targets")
    if not link.bus.connected.is_set():
        raise UserError(503, "ops.broker_down")
    existing = {r.device_id: r for r in s.scalars(
        select(UpdateRollout).where(UpdateRollout.bundle_id == bundle.id,
                                    UpdateRollout.device_id.in_([d.id for d in chosen])))}  # fmt: skip
    body = UpdateCommand(manifest=bundle.manifest, signature=ManifestSignature(**bundle.signature),
                         wheel_url=f"/updates/files/{bundle.wheel_sha256}").model_dump(mode="json")
    now = datetime.now(UTC)
    outgoing: list[tuple[Device, Envelope]] = []
    skipped = 0
    for device in chosen:
        row = existing.get(device.id)
        if row is not None and row.state in ("sent", "applied", "rolled_back"):
            skipped += 1  # a failed health check is not retried by widening the rollout
            continue
        env = Envelope.new(CommandKind.UPDATE, f"dev/{device.uid}", body, ttl=COMMAND_TTL,
                           priority=Priority.FILLER, now=now)
        if row is None:
            row = UpdateRollout(bundle_id=bundle.id, device_id=device.id, created_by=user.id,
                                command_id=env.id)
            s.add(row)
        row.command_id, row.state, row.reason, row.message, row.updated_at = env.id, "sent", None, None, now
        outgoing.append((device, env))
    audit.record(s, user.id, "update.rollout", "update", bundle.id, version=bundle.version,
                 percent=req.percent, devices=[d.id for d, _ in outgoing])
    s.commit()  # rows first: a quick station's outcome always finds its row
    failed = 0
    for device, env in outgoing:
        try:
            payload = SignedMessage.seal(env, link.signer).to_bytes()
            await link.bus.publish(topics.cmd(device.uid), payload, qos=1)
        except ConnectionError:
            failed += 1
            row = existing.get(device.id) or s.scalar(select(UpdateRollout).where(
                UpdateRollout.bundle_id == bundle.id, UpdateRollout.device_id == device.id))
            if row is not None:
                row.state, row.reason = "failed", "not_sent"
    s.commit()
    return {"bundle_id": bundle.id, "version": bundle.version, "sent": len(outgoing) - failed,
            "not_sent": failed, "already": skipped, "devices": [d.id for d, _ in outgoing]}


def to_json(bundle: UpdateBundle, rollouts: list[UpdateRollout] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": bundle.id, "version": bundle.version, "wheel_name": bundle.wheel_name,
        "wheel_sha256": bundle.wheel_sha256, "size": bundle.size,
        "min_agent_version": bundle.min_agent_version,
        "created_at": bundle.created_at.isoformat(), "wheel_url": f"/updates/files/{bundle.wheel_sha256}",
        "manifest": bundle.manifest, "signature": bundle.signature,
    }  # fmt: skip
    if rollouts is not None:
        counts: dict[str, int] = {}
        for r in rollouts:
            counts[r.state] = counts.get(r.state, 0) + 1
        out["counts"] = counts
        out["stations"] = [{"device_id": r.device_id, "state": r.state, "reason": r.reason,
                            "message": r.message, "command_id": r.command_id,
                            "updated_at": r.updated_at.isoformat()} for r in rollouts]
    return out


def rollouts_of(s: Session, bundle_id: int, user: User | None = None) -> list[UpdateRollout]:
    """Every station's state for the release; with `user`, only the stations in their area
    (a release is fleet-wide, the per-station rollout is area-bound)."""
    q = select(UpdateRollout).where(UpdateRollout.bundle_id == bundle_id).order_by(UpdateRollout.device_id)
    scope = None if user is None else communes_in_scope(s, user)
    if scope is not None:
        q = q.join(Device, Device.id == UpdateRollout.device_id).where(*in_scope(scope, Device.commune_id))
    return list(s.scalars(q))


def apply_events(s: Session, events: list[tuple[int, Event]]) -> None:
    """Outcomes reported by stations (ingest's batch transaction); rejected envelopes too."""
    _apply_unreferenced(s, [(d, ev) for d, ev in events if not ev.ref and ev.kind in STATE_BY_EVENT])
    wanted = [(d, ev) for d, ev in events
              if ev.ref and (ev.kind in STATE_BY_EVENT or ev.kind is EventKind.REJECTED)]
    if not wanted:
        return
    refs = {ev.ref for _, ev in wanted}
    query = select(UpdateRollout).where(UpdateRollout.command_id.in_(refs))
    rows = {r.command_id: r for r in s.scalars(query)}
    for device_id, ev in wanted:
        row = rows.get(ev.ref or "")
        if row is None or row.device_id != device_id:
            continue
        row.state = STATE_BY_EVENT.get(ev.kind, "refused")
        row.reason = ev.reason
        row.message = str(ev.detail.get("message") or "")[:2000] or None
        row.updated_at = ev.ts


def _apply_unreferenced(s: Session, events: list[tuple[int, Event]]) -> None:
    """A crash-loop rollback is reported by the next agent run, with no command to refer to:
    match it by station and release version."""
    for device_id, ev in events:
        version = ev.detail.get("version")
        if not isinstance(version, str):
            continue
        row = s.scalar(select(UpdateRollout).join(UpdateBundle, UpdateBundle.id == UpdateRollout.bundle_id)
                       .where(UpdateRollout.device_id == device_id, UpdateBundle.version == version))
        if row is not None:
            row.state, row.reason, row.updated_at = STATE_BY_EVENT[ev.kind], ev.reason, ev.ts
            row.message = str(ev.detail.get("message") or "")[:2000] or None
