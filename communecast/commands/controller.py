from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from communecast.private import owner_only

    owner_only()  # database, media, keys: the service's alone (issue 16)

    from controller.app import create_app
    from controller.core.config import Settings

    overrides: dict[str, object] = {}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if args.port:
        overrides["http_port"] = args.port
    settings = Settings(**overrides)  # type: ignore[arg-type]
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port,
                log_level="info", access_log=False)
    return 0


def _broker_credentials(args: argparse.Namespace) -> int:
    """Write the broker's password/ACL files from the database (docker-compose one-shot)."""
    from controller.core.config import Settings
    from controller.runtime import Runtime

    settings = Settings()
    if args.out_dir:
        settings = settings.model_copy(update={"broker_auth_dir": Path(args.out_dir)})
    if settings.broker_auth_dir is None:
        print("set COMMUNECAST_BROKER_AUTH_DIR or --out-dir", file=sys.stderr)
        return 2
    runtime = Runtime.build(settings)
    runtime.sync_broker_credentials()
    runtime.db.dispose()
    print(f"wrote {settings.broker_auth_dir}/passwd, services-passwd and acl")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ctl = sub.add_parser("controller", help="the central service")
    ctl_sub = ctl.add_subparsers(dest="action", required=True)
    run = ctl_sub.add_parser("run", help="serve the API (settings from COMMUNECAST_* env)")
    run.add_argument("--data-dir")
    run.add_argument("--port", type=int)
    run.set_defaults(func=_run)

    broker = sub.add_parser("broker", help="broker housekeeping")
    broker_sub = broker.add_subparsers(dest="action", required=True)
    creds = broker_sub.add_parser("credentials", help="write Mosquitto passwd/acl from the database")
    creds.add_argument("--out-dir", help="default: COMMUNECAST_BROKER_AUTH_DIR")
    creds.set_defaults(func=_broker_credentials)
