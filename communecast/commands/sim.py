from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path


def _stations(args: argparse.Namespace) -> int:
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


def _fleet(args: argparse.Namespace) -> int:
    from communecast.bench_scale import run_fleet

    return run_fleet(args)


def _led(args: argparse.Namespace) -> int:
    from firmware_sim.led.server import serve

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        print("--listen takes HOST:PORT, e.g. 127.0.0.1:7001", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.protocol, host, int(port), Path(args.state_dir)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    stations.set_defaults(func=_stations)
    fleet = sim_sub.add_parser(
        "fleet", help="N simulated speaker stations in one process (own MQTT connection and "
        "credentials each); prints memory per station (docs/scaling.md)")
    fleet.add_argument("--devices", type=int, default=100)
    fleet.add_argument("--controller", default=os.environ.get(
        "COMMUNECAST_CONTROLLER_URL", "http://127.0.0.1:8080"))
    fleet.add_argument("--mqtt-host", default=os.environ.get("COMMUNECAST_MQTT_HOST"),
                       help="override the broker host given in the issued agent configs")
    fleet.add_argument("--data-dir", default=os.environ.get("COMMUNECAST_DATA_DIR", "./sim-fleet"))
    fleet.add_argument("--seconds", type=float, help="stop after this long (default: run until ^C)")
    fleet.add_argument("--json", help="write the memory/descriptor figures here")
    fleet.set_defaults(func=_fleet)
    led = sim_sub.add_parser(
        "led", help="one simulated LED board controller on a TCP serial line (pyserial socket:// URL)"
    )
    led.add_argument("--protocol", choices=["alpha", "bx5k"], default="alpha")
    led.add_argument("--listen", default="127.0.0.1:7001", help="HOST:PORT")
    led.add_argument("--state-dir", default="./sim-led", help="state.json and current.png go here")
    led.set_defaults(func=_led)
