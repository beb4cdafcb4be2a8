"""`communecast update build | install`: signed agent release bundles (docs/operations.md).

`build` runs where the controller key lives and writes an offline bundle (tar: manifest.json,
manifest.sig, the wheel). `install` runs on a Pi (e.g. from a USB stick) and applies a bundle
with exactly the checks a rollout over MQTT gets: signature, wheel hash, slot, health check,
rollback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def _build(args: argparse.Namespace) -> int:
    from controller.core.errors import UserError
    from controller.core.i18n import t
    from controller.services.updates import make_manifest
    from device_agents.common.updater import write_bundle
    from protocol.signing import KeyPair, Signer

    wheel, key = Path(args.wheel), Path(args.key)
    if not wheel.is_file():
        print(f"Không có tệp {wheel} / {wheel} does not exist", file=sys.stderr)
        return 2
    if not key.is_file():
        print(f"Không có khóa {key} / no key at {key}", file=sys.stderr)
        return 2
    signer = Signer(KeyPair.load_or_create(key))  # exists: only ever loaded here
    try:
        manifest, text, signature = make_manifest(wheel, wheel.name, args.version, args.min_agent_version,
                                                  signer)
    except UserError as exc:
        print(f"{t(exc.key, 'vi', **exc.params)}\n{t(exc.key, 'en', **exc.params)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    write_bundle(out, text, signature, wheel)
    print(f"{out}: communecast {manifest.version}, wheel sha256 {manifest.sha256}, "
          f"signed by key {signature.kid}")
    return 0


def _install(args: argparse.Namespace) -> int:
    from device_agents.common.config import AgentConfig
    from device_agents.common.store import AgentStore
    from device_agents.common.trust import StationTrust
    from device_agents.common.updater import Updater
    from device_agents.enroll import config_path
    from protocol.messages import EventKind

    path = Path(args.config) if args.config else config_path(Path(args.data_dir))
    if not path.exists():
        print(f"Chưa kích hoạt: không có {path} / not enrolled: {path} does not exist", file=sys.stderr)
        return 2
    config = AgentConfig.load(path)
    # The keys the station learnt from the key chain (rotations, revocations), not only its config's.
    store = AgentStore(config.data_dir / "agent.sqlite3")
    try:
        updater = Updater(config, verifier=StationTrust(config.controller_public_keys, store))
        outcome = asyncio.run(updater.apply_bundle(Path(args.bundle)))
    finally:
        store.close()
    print(f"{outcome.kind.value}: {outcome.version} {outcome.reason or ''} {outcome.message or ''}".strip())
    if outcome.kind is EventKind.UPDATE_APPLIED:
        print("Khởi động lại dịch vụ để chạy bản mới: systemctl restart communecast-agent\n"
              "Restart the service to run it: systemctl restart communecast-agent")
        return 0
    return 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    update = sub.add_parser("update", help="signed agent release bundles")
    update_sub = update.add_subparsers(dest="action", required=True)

    build = update_sub.add_parser("build", help="sign a wheel into an offline bundle (controller key)")
    build.add_argument("--wheel", required=True, help="communecast-<version>-py3-none-any.whl")
    build.add_argument("--version", required=True, help="the release version, e.g. 0.2.0")
    build.add_argument("--min-agent-version", default="0.0.0", help="agents older than this refuse it")
    build.add_argument("--key", required=True,
                       help="the controller's signing key, <data dir>/keys/controller_ed25519.pem")
    build.add_argument("--out", required=True, help="bundle file to write (.ccupdate)")
    build.set_defaults(func=_build)

    install = update_sub.add_parser("install", help="apply a bundle on this station (offline)")
    install.add_argument("--bundle", required=True)
    where = install.add_mutually_exclusive_group()
    where.add_argument("--data-dir", default="/var/lib/communecast-agent")
    where.add_argument("--config", help="agent config JSON instead of a data dir")
    install.set_defaults(func=_install)
