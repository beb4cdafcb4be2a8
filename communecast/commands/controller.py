from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn  # the controller's extra: a Pi runs `communecast agent` without it


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
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.http_host,
                                           port=settings.http_port, log_level="info", access_log=False))
    asyncio.run(_serve(server))
    return 0


async def _serve(server: uvicorn.Server) -> None:
    """uvicorn, plus systemd's READY=1 once the HTTP socket listens (the database is migrated
    by then; the broker need not be up) and WATCHDOG=1 pings from the same event loop
    (communecast/sd_notify.py; a no-op outside systemd)."""
    from communecast.sd_notify import Notifier

    notify = Notifier()
    serving = asyncio.create_task(server.serve())
    pings: asyncio.Task[None] | None = None
    try:
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has a flag, no event)
            await asyncio.sleep(0.05)
        if server.started:
            notify.ready("serving")
            pings = asyncio.create_task(notify.keep_alive())
        await serving
    finally:
        notify.stopping()
        if pings is not None:
            pings.cancel()


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
