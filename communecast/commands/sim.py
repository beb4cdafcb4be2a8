from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path


def _stations(args: argparse.Namespace) -> int:
    from communecast.stations import run_fleet_from_api

    password = os.environ.get("COMMUNECAST_ADMIN_PASSWORD")
    if not password:
        print("set COMMUNECAST_ADMIN_PASSWORD (the controller's admin password)", file=sys.stderr)
        return 2
    user = os.environ.get("COMMUNECAST_ADMIN_USER", "admin")
    if args.fault or args.control:  # fault injection (docs/health.md)
        from firmware_sim.faults import Faults

        unknown = set(args.fault) - Faults.names()
        if unknown:
            known = ", ".join(sorted(Faults.names()))
            print(f"unknown fault(s) {', '.join(sorted(unknown))}; known: {known}", file=sys.stderr)
            return 2
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run_with_faults(args, user, password))
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_fleet_from_api(
            args.controller, user, password,
            args.devices, Path(args.data_dir), mqtt_host=args.mqtt_host,
        ))  # fmt: skip
    return 0


async def _run_with_faults(args: argparse.Namespace, user: str, password: str) -> None:
    """Like run_fleet_from_api, with --fault switched on and the --control HTTP API served."""
    from communecast.stations import ApiClient, provision, run_simulated
    from firmware_sim.faults import FaultControl

    api = await ApiClient.login(args.controller, user, password)
    configs = await provision(api, args.devices, Path(args.data_dir))
    if args.mqtt_host:
        configs = [c.model_copy(update={"mqtt_host": args.mqtt_host}) for c in configs]
    stations = await run_simulated(configs)
    faults = {st.agent.uid: st.hardware.faults for st in stations}  # type: ignore[attr-defined]
    for f in faults.values():
        for name in args.fault:
            f.set(name, True)
    control = None
    if args.control:
        host, _, port = args.control.rpartition(":")
        control = FaultControl(lambda: faults, host or "127.0.0.1", int(port)).start()
        print(f"fault control: GET {control.url}/faults, POST {control.url}/faults/<uid|all>", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        if control is not None:
            control.close()
        for st in stations:
            await st.stop()


def _fleet(args: argparse.Namespace) -> int:
    if args.processes > 1:
        return _fleet_processes(args)
    from communecast.sim_fleet import run_fleet

    return run_fleet(args)


def _fleet_processes(args: argparse.Namespace) -> int:
    """--processes P: provision here once, then P worker processes (firmware_sim/fleet_workers.py)."""
    import json

    from communecast.stations import ApiClient
    from firmware_sim.fleet import provision_fleet
    from firmware_sim.fleet_workers import run_fleet_processes

    password = os.environ.get("COMMUNECAST_ADMIN_PASSWORD")
    if not password:
        print("set COMMUNECAST_ADMIN_PASSWORD (the controller's admin password)", file=sys.stderr)
        return 2

    async def provision() -> list:  # type: ignore[type-arg]
        user = os.environ.get("COMMUNECAST_ADMIN_USER", "admin")
        api = await ApiClient.login(args.controller, user, password)
        return await provision_fleet(args.controller, api.token, args.devices, Path(args.data_dir),
                                     mqtt_host=args.mqtt_host)

    began = time.monotonic()
    configs = asyncio.run(provision())
    print(f"provisioned {len(configs)} stations in {time.monotonic() - began:.1f} s", flush=True)
    heartbeat = os.environ.get("COMMUNECAST_SIM_HEARTBEAT_FILE")

    def save(figures: dict) -> None:  # type: ignore[type-arg]
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))

    run_fleet_processes(configs, args.processes, seconds=args.seconds,
                        heartbeat=Path(heartbeat) if heartbeat else None, on_started=save)
    return 0


def _led(args: argparse.Namespace) -> int:
    from firmware_sim.led.server import serve

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        print("--listen takes HOST:PORT, e.g. 127.0.0.1:7001", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.protocol, host, int(port), Path(args.state_dir)))
    return 0


def _provincial(args: argparse.Namespace) -> int:
    from communecast.provincial_sim import serve

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        print("--listen takes HOST:PORT, e.g. 127.0.0.1:8090", file=sys.stderr)
        return 2
    password = os.environ.get("COMMUNECAST_PROVINCIAL_SIM_PASSWORD")
    if not password:
        print("set COMMUNECAST_PROVINCIAL_SIM_PASSWORD (the password the simulated province accepts)",
              file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, int(port), args.username, password, args.token_ttl))
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
    stations.add_argument("--fault", action="append", default=[], metavar="NAME",
                          help="switch a simulated fault on in every station (repeatable): cut_speaker_line, "
                          "mains_loss, overheat, clock_drift, no_reply, garble, garble_requests "
                          "(docs/health.md)")
    stations.add_argument("--control", metavar="HOST:PORT",
                          help="serve the HTTP/JSON fault control (GET /faults, POST /faults/<uid|all>)")
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
    fleet.add_argument("--processes", type=int, default=1,
                       help="split the stations over this many worker processes, one event loop each")
    fleet.set_defaults(func=_fleet)
    led = sim_sub.add_parser(
        "led", help="one simulated LED board controller on a TCP serial line (pyserial socket:// URL)"
    )
    led.add_argument("--protocol", choices=["alpha", "bx5k"], default="alpha")
    led.add_argument("--listen", default="127.0.0.1:7001", help="HOST:PORT")
    led.add_argument("--state-dir", default="./sim-led", help="state.json and current.png go here")
    led.set_defaults(func=_led)
    prov = sim_sub.add_parser(
        "provincial", help="a simulated provincial source system (login, status, play logs; "
        "docs/provincial.md)"
    )
    prov.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT")
    prov.add_argument("--username", default="xa-hop-hoa")
    prov.add_argument("--token-ttl", type=float, default=3600.0, help="seconds a token is valid")
    prov.set_defaults(func=_provincial)
