"""Issue 6, item 6: signed agent updates with a health check and automatic rollback.

The wheels are real: the project's own `protocol` and `device_agents` sources packed as a
`communecast-<version>` wheel (a broken release has an agent module that cannot import),
installed by pip into a release slot, and health-checked by the new release's own
`python -m device_agents.selfcheck` against a real broker.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sys
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from communecast.cli import main as cli
from controller.db.models import Area, Device, User
from controller.db.models_ops import UpdateBundle, UpdateRollout
from controller.db.session import Database
from controller.services import updates
from controller.services.ingest import Ingest
from controller.services.targets import Targets
from device_agents.common.config import AgentConfig
from device_agents.common.updater import Updater, boot_guard, write_bundle
from protocol import topics
from protocol.envelope import Envelope, SignedMessage
from protocol.messages import CommandKind, Event, EventKind
from protocol.ops import UpdateCommand, UpdateManifest, sign_manifest
from protocol.signing import KeyPair, Signer
from testkit.harness import CONTROLLER_USER, System
from testkit.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def make_wheel(folder: Path, version: str, *, broken: bool = False) -> Path:
    """A pure-Python wheel of the agent's code (what a release carries), built with zipfile."""
    files: dict[str, bytes] = {}
    for package in ("protocol", "device_agents"):
        for path in sorted((ROOT / package).rglob("*.py")):
            files[path.relative_to(ROOT).as_posix()] = path.read_bytes()
    if broken:  # what a release with a missing dependency looks like on a Pi
        files["device_agents/speaker/role.py"] = b"import communecast_dependency_not_on_this_pi\n"
    info = f"communecast-{version}.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: communecast\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"communecast-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel


@pytest.fixture
def controller_key(tmp_path: Path) -> Path:
    path = tmp_path / "controller" / "keys" / "controller_ed25519.pem"
    KeyPair.load_or_create(path)
    return path


def agent_config(tmp_path: Path, key: Path) -> AgentConfig:
    return AgentConfig(
        uid="spk-upd", controller_url="http://127.0.0.1:9", data_dir=tmp_path / "agent",
        controller_public_keys=[KeyPair.load_or_create(key).public_text],
        mqtt_host="127.0.0.1", mqtt_port=1883,  # the shared test broker: the health check dials it
    )  # fmt: skip


def build(tmp_path: Path, wheel: Path, version: str, key: Path, name: str) -> Path:
    out = tmp_path / f"{name}.ccupdate"
    assert cli(["update", "build", "--wheel", str(wheel), "--version", version, "--key", str(key),
                "--out", str(out)]) == 0  # fmt: skip
    return out


def slots(config: AgentConfig) -> list[str]:
    root = config.data_dir / "releases"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink()
                  and not p.name.startswith(".")) if root.exists() else []  # fmt: skip


async def test_bad_signature_and_hash_mismatch_install_nothing(tmp_path: Path, controller_key: Path) -> None:
    config = agent_config(tmp_path, controller_key)
    wheel = make_wheel(tmp_path / "w", "0.2.0")
    updater = Updater(config)

    # Signed by a key the station does not trust (built with the same CLI, another key).
    rogue = tmp_path / "rogue.pem"
    KeyPair.load_or_create(rogue)
    outcome = await updater.apply_bundle(build(tmp_path, wheel, "0.2.0", rogue, "rogue"))
    assert outcome.kind is EventKind.UPDATE_REFUSED and outcome.reason == "bad_signature", outcome
    assert updater.releases.current_version() is None and slots(config) == []

    # Signed by the right key, but the wheel inside is not the one the manifest names.
    good = build(tmp_path, wheel, "0.2.0", controller_key, "good")
    other = make_wheel(tmp_path / "other", "0.2.0", broken=True)
    manifest = UpdateManifest.model_validate_json(_member(good, "manifest.json"))
    text, sig = _member(good, "manifest.json").decode(), _signature(good)
    tampered = tmp_path / "tampered.ccupdate"
    write_bundle(tampered, text, sig, other)
    outcome = await updater.apply_bundle(tampered)
    assert outcome.kind is EventKind.UPDATE_REFUSED and outcome.reason == "sha256_mismatch", outcome
    assert manifest.sha256[:16] in (outcome.message or "")
    assert updater.releases.current_version() is None and slots(config) == []


async def test_failed_health_check_rolls_back_to_the_previous_release(
    tmp_path: Path, controller_key: Path
) -> None:
    config = agent_config(tmp_path, controller_key)
    updater = Updater(config, health_timeout_s=30)
    good = build(tmp_path, make_wheel(tmp_path / "a", "0.2.0"), "0.2.0", controller_key, "good")
    applied = await updater.apply_bundle(good)
    assert applied.kind is EventKind.UPDATE_APPLIED, applied
    assert updater.releases.current_version() == "0.2.0"
    assert applied.detail["check"]["version"] == "0.2.0"  # the new slot's own selfcheck ran
    assert (config.data_dir / "releases" / "current" / "device_agents" / "selfcheck.py").exists()

    broken = build(tmp_path, make_wheel(tmp_path / "b", "0.3.0", broken=True), "0.3.0", controller_key, "bad")
    outcome = await updater.apply_bundle(broken)
    assert outcome.kind is EventKind.UPDATE_ROLLED_BACK and outcome.reason == "health_check_failed", outcome
    assert "communecast_dependency_not_on_this_pi" in (outcome.message or "")
    assert outcome.detail["restored"] == "0.2.0"
    assert updater.releases.current_version() == "0.2.0"  # the pointer is back
    assert slots(config) == ["0.2.0"]  # the failed slot is gone

    # 0.2.0 passed its check but (say) never reaches the broker after the restart: the boot guard
    # systemd runs before each start (the image's Python, isolated) gives it 3 starts, then rolls back.
    guard = [sys.executable, "-I", "-m", "device_agents.common.updater", "--boot-guard",
             "--data-dir", str(config.data_dir)]
    proc = await asyncio.create_subprocess_exec(*guard, stdout=asyncio.subprocess.PIPE, cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0 and b"start 1 of 3" in out, out
    assert boot_guard(config.data_dir) and boot_guard(config.data_dir)  # starts 2 and 3
    assert "rolled back to image" in (boot_guard(config.data_dir) or "")
    assert updater.releases.current_version() is None and slots(config) == []
    restarted = Updater(config)
    await restarted.watch_boot(asyncio.Event())  # the next (image) agent reports it at start
    crash = restarted.outcomes[0]
    assert crash.kind is EventKind.UPDATE_ROLLED_BACK and crash.reason == "crash_loop"
    assert crash.version == "0.2.0"
    assert boot_guard(config.data_dir) is None


async def test_a_run_that_reaches_the_broker_confirms_its_release(
    tmp_path: Path, controller_key: Path
) -> None:
    config = agent_config(tmp_path, controller_key)
    rel = Updater(config).releases
    (rel.root / "0.9.0").mkdir(parents=True)
    rel.switch("0.9.0")
    (rel.pending).write_text(json.dumps({"version": "0.9.0", "previous": None, "boots": 1}))
    connected = asyncio.Event()
    watcher = asyncio.create_task(Updater(config).watch_boot(connected))
    await asyncio.sleep(0.05)
    assert rel.pending.exists() and not watcher.done()
    connected.set()
    await asyncio.wait_for(watcher, 5)
    assert not rel.pending.exists() and rel.current_version() == "0.9.0"
    assert boot_guard(config.data_dir) is None  # confirmed: nothing left to count


# The whole system once, on PostgreSQL (diagnostics run it on SQLite); rollout bookkeeping
# runs on both databases below.
ON_POSTGRES = [pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("database_url", ON_POSTGRES, indirect=True)
async def test_rollout_over_the_broker(system: System, tmp_path: Path) -> None:
    """Controller -> signed UPDATE -> agent: applied (restart requested); a forged manifest refused."""
    (st,) = await system.add_stations(1)
    await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                     lambda ds: all(d["online"] for d in ds), timeout=10, what="station online")
    wheel = make_wheel(tmp_path / "w", "0.4.0")
    with wheel.open("rb") as fh:
        r = await system.api("POST", "/api/v1/updates", files={"file": (wheel.name, fh)},
                             data={"version": "0.4.0"})
    assert r.status_code == 201, r.text
    bundle = r.json()
    assert UpdateManifest.model_validate_json(bundle["manifest"]).sha256 == bundle["wheel_sha256"]

    posted = time.monotonic()
    sent = await system.api_json("POST", f"/api/v1/updates/{bundle['id']}/rollout", json={"percent": 100})
    assert sent["devices"] == [st.device_id]
    done = await eventually(
        lambda: system.api_json("GET", f"/api/v1/updates/{bundle['id']}"),
        lambda b: b["stations"][0]["state"] != "sent", timeout=40, what="the station's update outcome",
    )
    assert done["stations"][0]["state"] == "applied", done
    print(f"\nrollout POST -> applied (download, pip install, switch, health check): "
          f"{time.monotonic() - posted:.1f} s")
    assert st.running.agent.updater.releases.current_version() == "0.4.0"
    # Applied: the agent asks its service manager for a restart into the new release.
    await asyncio.wait_for(st.running.agent.diagnostics.restart_requested.wait(), 6)

    # A manifest signed with another key inside a correctly signed envelope: refused, nothing installed.
    rogue = Signer(KeyPair.generate())
    manifest = UpdateManifest.model_validate_json(bundle["manifest"]).model_copy(update={"version": "0.5.0"})
    text, sig = sign_manifest(manifest, rogue)
    body = UpdateCommand(manifest=text, signature=sig, wheel_url=bundle["wheel_url"]).model_dump(mode="json")
    env = Envelope.new(CommandKind.UPDATE, f"dev/{st.uid}", body, ttl=timedelta(minutes=5))
    signer = Signer(KeyPair.load_or_create(system.signing_key_path))
    async with aiomqtt.Client("127.0.0.1", system.broker.port, username=CONTROLLER_USER,
                              password=system.mqtt_password, identifier="upd-test-raw") as client:
        await client.publish(topics.cmd(st.uid), SignedMessage.seal(env, signer).to_bytes(), qos=1)
    events = await eventually(
        lambda: system.api_json("GET", f"/api/v1/devices/{st.device_id}/events?kind=update_refused"),
        lambda evs: any(e.get("ref") == env.id for e in evs), timeout=15, what="update_refused",
    )
    refused = next(e for e in events if e.get("ref") == env.id)
    assert refused["reason"] == "bad_signature" and refused["detail"]["version"] == "0.5.0"
    assert st.running.agent.updater.releases.current_version() == "0.4.0"


def test_rollout_selection_and_outcomes(database_url: str) -> None:
    """Percentages widen to supersets, areas narrow, and station outcomes land on their rows."""
    db = Database(database_url)
    db.migrate()
    now = datetime.now(UTC)
    with db.session() as s:
        a, b = Area(level="commune", name="Xã Hợp Hòa"), Area(level="commune", name="Xã Kim Long")
        s.add_all([a, b])
        s.flush()
        for i in range(10):
            s.add(Device(uid=f"spk-{i:02d}" if i < 8 else f"led-{i:02d}", name=f"Trạm {i}",
                         kind="speaker" if i < 8 else "led", commune_id=(a if i % 2 else b).id,
                         tags=[], reported={}))  # fmt: skip
        admin = User(username="admin", password_hash="-", role="admin", active=True)
        bundle = UpdateBundle(version="0.2.0", wheel_name="communecast-0.2.0-py3-none-any.whl",
                              wheel_sha256="0" * 64, size=1, min_agent_version="0.0.0", manifest="{}",
                              signature={"kid": "k", "sig": "s"})  # fmt: skip
        s.add_all([admin, bundle])
        s.flush()
        ten = updates.choose(s, admin, bundle, updates.RolloutRequest(percent=10))
        half = updates.choose(s, admin, bundle, updates.RolloutRequest(percent=50))
        every = updates.choose(s, admin, bundle, updates.RolloutRequest())
        in_a = updates.choose(s, admin, bundle, updates.RolloutRequest(targets=Targets(communes=[a.id])))
        assert len(ten) == 1 and len(half) == 5 and len(every) == 10
        assert {d.id for d in ten} <= {d.id for d in half}  # widening keeps the first stations
        assert {d.kind for d in every} == {"speaker", "led"}
        assert len(in_a) == 5 and {d.commune_id for d in in_a} == {a.id}
        for i, d in enumerate(half):
            s.add(UpdateRollout(bundle_id=bundle.id, device_id=d.id, command_id=f"{i}" * 32, state="sent"))
        uids = {d.id: d.uid for d in half}
        order = [d.id for d in half]
        bundle_id = bundle.id
    outcomes = [
        (EventKind.UPDATE_APPLIED, None), (EventKind.UPDATE_ROLLED_BACK, "health_check_failed"),
        (EventKind.UPDATE_REFUSED, "bad_signature"), (EventKind.REJECTED, "expired"),
    ]
    ingest = Ingest(db)
    parsed = []
    for i, (kind, reason) in enumerate(outcomes):
        ev = Event(id=uuid.uuid4().hex, kind=kind, ts=now, ref=f"{i}" * 32, reason=reason,
                   detail={"version": "0.2.0", "message": f"outcome {i}"})
        parsed.append(ingest.parse(topics.events(uids[order[i]]), ev.model_dump_json().encode()))
    # A crash-loop rollback comes from the next agent run, with no command id: matched by version.
    crash = Event(id=uuid.uuid4().hex, kind=EventKind.UPDATE_ROLLED_BACK, ts=now, reason="crash_loop",
                  detail={"version": "0.2.0"})
    parsed.append(ingest.parse(topics.events(uids[order[4]]), crash.model_dump_json().encode()))
    ingest.store([p for p in parsed if p])
    with db.session() as s:
        states = {r.device_id: (r.state, r.reason) for r in updates.rollouts_of(s, bundle_id)}
    db.dispose()
    assert [states[d] for d in order] == [
        ("applied", None), ("rolled_back", "health_check_failed"), ("refused", "bad_signature"),
        ("refused", "expired"), ("rolled_back", "crash_loop")]


def _member(bundle: Path, name: str) -> bytes:
    import tarfile

    with tarfile.open(bundle) as tar:
        fh = tar.extractfile(name)
        assert fh is not None
        return fh.read()


def _signature(bundle: Path):  # type: ignore[no-untyped-def]
    from protocol.ops import ManifestSignature

    return ManifestSignature.model_validate(json.loads(_member(bundle, "manifest.sig")))
