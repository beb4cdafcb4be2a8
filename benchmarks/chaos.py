"""`communecast bench chaos`: an accelerated week of schedules and emergencies on N stations under a
seeded schedule of faults, then a ledger of every planned occurrence at every station (issue 18).

The runner, the faults and the ledger are in testkit/chaos.py (the suite's tests/system/test_chaos.py
runs a shorter version). Prints the ledger's totals and the seed; `--json PATH` writes them with every
fault injected and every item that breaks the ledger. Exit status 1 when the ledger does not balance:
that seed is then a regression test (`--seed S` replays the same faults at the same virtual instants).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path

from testkit.chaos import FAULT_MIX, ChaosSettings, run_chaos, write_json
from testkit.harness import System
from testkit.pgtemp import fresh_database


async def bench_chaos(
    settings: ChaosSettings, keep: str | None = None, database_url: str | None = None
) -> int:
    # Fifty agents log every play and reconnect at INFO: the ledger is the output here.
    for name in ("firmware_sim", "device_agents", "mqtt_adapter", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("mqtt").setLevel(logging.CRITICAL)  # paho's "connection reset": the faults' doing
    logging.getLogger("firmware_sim").setLevel(logging.ERROR)  # CRC rejections: serial_garble's doing
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # "no response received": the same
    with tempfile.TemporaryDirectory(prefix="cc-bench-chaos-") as tmp:
        root = Path(keep) if keep else Path(tmp)
        horizon = max(8, int(settings.days) + 3)
        url, drop = f"sqlite:///{root / 'chaos.db'}", None
        if database_url and database_url.startswith("postgresql"):
            url, drop = fresh_database(database_url, prefix="cc_bench_chaos")  # never the server's own
        print(f"database: {url.split('://')[0]}")
        system = System(root / "system", url, controller_env={"COMMUNECAST_HORIZON_DAYS": str(horizon)})
        try:
            await system.start()
            result = await run_chaos(system, settings, root / "work")
        finally:
            await system.stop()
            if drop is not None:
                drop()
    print(result.summary())
    ledger = result.ledger
    for item in [*ledger.breaking[:20], *ledger.serial.breaking[:10], *ledger.led.breaking[:10]]:
        print(f"  ! {item}")
    if args_json := getattr(settings, "_json", None):
        write_json(result, args_json)
    return 0 if result.ledger.ok else 1


def run(args: argparse.Namespace) -> int:
    kinds = tuple(k.strip() for k in args.faults_kinds.split(",")) if args.faults_kinds else tuple(FAULT_MIX)
    unknown = set(kinds) - set(FAULT_MIX)
    if unknown:
        raise SystemExit(f"unknown fault kinds: {sorted(unknown)} (known: {', '.join(FAULT_MIX)})")
    settings = ChaosSettings(stations=args.stations, days=args.days, seed=args.seed, faults=args.faults,
                             emergencies_per_day=args.emergencies_per_day, speed=args.speed,
                             settle_s=args.settle, kinds=kinds, serial_every=args.serial_every,
                             led_boards=args.led_boards)
    settings._json = args.json  # type: ignore[attr-defined]
    return asyncio.run(bench_chaos(settings, args.keep, args.database_url))
