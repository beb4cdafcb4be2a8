"""`communecast` console script. Subcommands import their side lazily, so a Raspberry Pi
with only the agent extra installed can run `communecast agent ...`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path


def _controller_run(args: argparse.Namespace) -> int:
    import uvicorn

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


def _agent_run(args: argparse.Namespace) -> int:
    from device_agents.runner import run_agent

    asyncio.run(run_agent(Path(args.config), simulated=args.sim))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from communecast.demo import DemoOptions, run_demo

    opts = DemoOptions(
        devices=args.devices,
        http_port=args.http_port,
        mqtt_port=args.mqtt_port,
        data_dir=Path(args.data_dir),
        admin_password=os.environ.get("COMMUNECAST_ADMIN_PASSWORD"),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(opts))
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
    print(f"wrote {settings.broker_auth_dir}/passwd and acl")
    return 0


def _sim_stations(args: argparse.Namespace) -> int:
    from communecast.stations import run_fleet_from_api

    password = os.environ.get("COMMUNECAST_ADMIN_PASSWORD")
    if not password:
        print("set COMMUNECAST_ADMIN_PASSWORD (the controller's admin password)", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_fleet_from_api(
            args.controller, os.environ.get("COMMUNECAST_ADMIN_USER", "admin"), password,
            args.devices, Path(args.data_dir), mqtt_host=args.mqtt_host,
        ))  # fmt: skip
    return 0


def _bench(args: argparse.Namespace) -> int:
    from communecast.bench import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="communecast", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="broker + controller + simulated stations, zero setup")
    demo.add_argument("--devices", type=int, default=3)
    demo.add_argument("--http-port", type=int, default=8080)
    demo.add_argument("--mqtt-port", type=int, default=18830)
    demo.add_argument("--data-dir", default="./demo-data")
    demo.set_defaults(func=_demo)

    ctl = sub.add_parser("controller", help="the central service")
    ctl_sub = ctl.add_subparsers(dest="action", required=True)
    run = ctl_sub.add_parser("run", help="serve the API (settings from COMMUNECAST_* env)")
    run.add_argument("--data-dir")
    run.add_argument("--port", type=int)
    run.set_defaults(func=_controller_run)

    agent = sub.add_parser("agent", help="the station agent (Raspberry Pi)")
    agent_sub = agent.add_subparsers(dest="action", required=True)
    arun = agent_sub.add_parser("run", help="run the agent from its config file")
    arun.add_argument("--config", required=True, help="agent config JSON issued by the controller")
    arun.add_argument("--sim", action="store_true", help="attach firmware_sim instead of hardware")
    arun.set_defaults(func=_agent_run)

    broker = sub.add_parser("broker", help="broker housekeeping")
    broker_sub = broker.add_subparsers(dest="action", required=True)
    creds = broker_sub.add_parser("credentials", help="write Mosquitto passwd/acl from the database")
    creds.add_argument("--out-dir", help="default: COMMUNECAST_BROKER_AUTH_DIR")
    creds.set_defaults(func=_broker_credentials)

    sim = sub.add_parser("sim", help="firmware simulator")
    sim_sub = sim.add_subparsers(dest="what", required=True)
    stations = sim_sub.add_parser(
        "stations", help="provision N simulated speaker stations via the REST API and run them"
    )
    stations.add_argument("--devices", type=int, default=3)
    stations.add_argument("--controller", default=os.environ.get(
        "COMMUNECAST_CONTROLLER_URL", "http://127.0.0.1:8080"))
    stations.add_argument("--mqtt-host", default=os.environ.get("COMMUNECAST_MQTT_HOST"),
                          help="override the broker host given in the issued agent configs")
    stations.add_argument("--data-dir", default=os.environ.get("COMMUNECAST_DATA_DIR", "./sim-data"))
    stations.set_defaults(func=_sim_stations)

    bench = sub.add_parser("bench", help="benchmarks that print numbers (and --json PATH)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bb = bench_sub.add_parser("broadcast", help="one bulletin end to end: acks, start error, proof")
    bb.add_argument("--devices", type=int, default=10)
    bb.add_argument("--rounds", type=int, default=3)
    bb.add_argument("--lead", type=float, default=3.0, help="seconds from POST to start_at")
    bb.add_argument("--database-url", help="default: a fresh SQLite file")
    bb.add_argument("--json", help="also write the result here")
    bb.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("COMMUNECAST_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
