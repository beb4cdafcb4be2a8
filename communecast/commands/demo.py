from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from communecast.demo import DemoOptions, run_demo
    from communecast.private import owner_only

    owner_only()  # the demo's controller and stations write like the real ones (issue 16)

    opts = DemoOptions(
        devices=args.devices,
        led_boards=args.led_boards,
        http_port=args.http_port,
        mqtt_port=args.mqtt_port,
        data_dir=Path(args.data_dir),
        admin_password=os.environ.get("COMMUNECAST_ADMIN_PASSWORD"),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(opts))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="broker + controller + simulated stations, zero setup")
    demo.add_argument("--devices", type=int, default=3, help="simulated speaker stations")
    demo.add_argument("--led-boards", type=int, default=3,
                      help="simulated LED boards (Alpha, BX-5K and bitmap in turn)")
    demo.add_argument("--http-port", type=int, default=8080)
    demo.add_argument("--mqtt-port", type=int, default=18830)
    demo.add_argument("--data-dir", default="./demo-data")
    demo.set_defaults(func=_demo)
