"""`communecast bench ...`: the benchmark commands, declared here, run from benchmarks/.

The benchmarks are not part of the installed product (a Pi's `pip install
'communecast[agent]'` carries none of them): they live in the top-level `benchmarks/`
package of the source checkout, which the wheel excludes. The arguments are declared here
so `communecast bench X --help` always answers; running one imports `benchmarks` from the
checkout this `communecast` package was loaded from (an editable install, scripts/setup.sh),
and otherwise says where the benchmarks are.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

NOT_INSTALLED = ("benchmarks ship with the source checkout: clone the repository and run "
                 "`bash scripts/setup.sh`, then `.venv/bin/communecast bench ...` from it")


def checkout_root() -> Path:
    """The directory holding the `communecast` package (the checkout root in an editable install)."""
    import communecast

    return Path(communecast.__file__).resolve().parents[1]


def benchmark(name: str) -> ModuleType:
    """`benchmarks.<name>`, importable only in a source checkout.

    setuptools' editable finder maps just the packages the wheel includes, so the excluded
    top-level `benchmarks` (and `testkit`, which it imports) are found by putting the checkout
    root on sys.path, and only when a `benchmarks/` package really sits there.
    """
    root = checkout_root()
    if (root / "benchmarks" / "__init__.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", "testkit"):
            raise
        raise SystemExit(f"{NOT_INSTALLED} ({exc.name} is not importable here)") from exc


def _runner(module: str, function: str = "run") -> Callable[[argparse.Namespace], int]:
    """A handler that imports its benchmark only when it runs (so --help needs none of them)."""

    def handler(args: argparse.Namespace) -> int:
        return int(getattr(benchmark(module), function)(args) or 0)

    return handler


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser("bench", help="benchmarks that print numbers (and --json PATH)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bb = bench_sub.add_parser("broadcast", help="one bulletin end to end: acks, start error, proof")
    bb.add_argument("--devices", type=int, default=10)
    bb.add_argument("--rounds", type=int, default=3)
    bb.add_argument("--lead", type=float, default=3.0, help="seconds from POST to start_at")
    bb.add_argument("--database-url", help="default: a fresh SQLite file; with a PostgreSQL URL a fresh "
                    "database is created on that server")
    bb.add_argument("--json", help="also write the result here")
    bb.set_defaults(func=_runner("broadcast"))

    bi = bench_sub.add_parser("ingest", help="events at rising rates into SQLite and PostgreSQL")
    bi.add_argument("--rates", default="1000,2500,5000,7500", help="offered msgs/s, comma-separated")
    bi.add_argument("--seconds", type=float, default=8.0, help="length of each step")
    bi.add_argument("--devices", type=int, default=1000)
    bi.add_argument("--backends", default="sqlite,postgres")
    bi.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                    help="server to create a fresh benchmark database on")
    bi.add_argument("--processes", type=int, default=1, help="load generator processes sharing each "
                    "step's rate (one offers up to ~20,000 msg/s here)")
    bi.add_argument("--climb", type=float, default=0.0, help="after the given rates, multiply the last "
                    "one by this (e.g. 1.25) until the controller falls behind or loses: its ceiling")
    bi.add_argument("--climb-max", type=int, default=60_000, help="highest rate --climb offers")
    bi.add_argument("--json", help="also write the results here")
    bi.set_defaults(func=_runner("broadcast"))

    bs = bench_sub.add_parser("sync", help="start skew across N stations for one scheduled bulletin")
    bs.add_argument("--devices", type=int, default=100)
    bs.add_argument("--lead", type=float, help="seconds from POST to start_at (default grows with N)")
    bs.add_argument("--database-url", help="default: a fresh SQLite file")
    bs.add_argument("--json", help="also write the result here")
    bs.add_argument("--profile", help="write a cProfile of the fleet from 2 s before the instant to 0.5 s "
                    "after it here (single-process fleet only)")
    bs.add_argument("--processes", type=int, default=1, help="run the simulated stations in this many "
                    "worker processes, one event loop each (default: in the benchmark's own process)")
    bs.set_defaults(func=_runner("sync", "run_sync"))

    bc = bench_sub.add_parser("chaos", help="an accelerated week of schedules and emergencies under a seeded "
                              "schedule of faults, reconciled in a ledger (docs/chaos.md)")
    bc.add_argument("--stations", type=int, default=50)
    bc.add_argument("--days", type=float, default=7.0, help="virtual days")
    bc.add_argument("--seed", type=int, default=1, help="seeds the faults and the emergencies' instants")
    bc.add_argument("--faults", type=int, help="how many faults (default: 24 per virtual day)")
    bc.add_argument("--faults-kinds", help="comma-separated subset of: broker_restart, broker_freeze, "
                    "controller_kill, partition, power_cut, clock_step, disk_full, serial_garble "
                    "(default: all)")
    bc.add_argument("--serial-every", type=int, default=10, help="every n-th station drives its amplifier "
                    "cabinet over Modbus RTU on a pty (serial_garble's targets; 0: none)")
    bc.add_argument("--led-boards", type=int, default=3, help="LED boards (Alpha, BX-5K simulators on ptys)")
    bc.add_argument("--emergencies-per-day", type=int, default=2)
    bc.add_argument("--speed", type=float, default=3600.0, help="virtual seconds per real second")
    bc.add_argument("--settle", type=float, default=60.0, help="real seconds to wait for the last proofs")
    bc.add_argument("--keep", help="run in this directory and keep it (logs, stores) instead of a temp dir")
    bc.add_argument("--database-url", help="default: a fresh SQLite file; with a PostgreSQL URL a fresh "
                    "database is created on that server (and dropped after)")
    bc.add_argument("--json", help="also write the ledger, the faults and the breaking items here")
    bc.set_defaults(func=_runner("chaos"))

    bh = bench_sub.add_parser("horizon", help="N stations x 4 daily schedules: build, sign and publish "
                              "everyone's desired-state horizon (target <= 10 s at 10,000)")
    bh.add_argument("--stations", type=int, default=10_000)
    bh.add_argument("--communes", type=int, help="default: stations / 20")
    bh.add_argument("--districts", type=int, help="default: communes / 20")
    bh.add_argument("--horizon-days", type=int, default=8)
    bh.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    bh.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                    help="server to create a throw-away benchmark database on")
    bh.add_argument("--profile", help="write cProfile stats of the phase run to PATH.<db>.prof")
    bh.add_argument("--json", help="also write the results here")
    bh.set_defaults(func=_runner("horizon"))

    ba = bench_sub.add_parser("acks", help="the controller's write path for one emergency's events: N acks "
                              "(deliveries marked), then N play_started and N play_finished, SQLite and "
                              "PostgreSQL")
    ba.add_argument("--devices", type=int, default=10_000)
    ba.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ba.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                    help="server to create a throw-away benchmark database on")
    ba.add_argument("--json", help="also write the results here")
    ba.set_defaults(func=_runner("acks"))

    bf = bench_sub.add_parser("fanout", help="one emergency to N stations (group fan-out, synchronized "
                              "start, acks) against a bare MQTT publish to N subscribers")
    bf.add_argument("--devices", type=int, default=200)
    bf.add_argument("--rounds", type=int, default=2, help="emergencies in a row (the lead learns)")
    bf.add_argument("--audio", choices=["held", "fresh"], default="held",
                    help="held: a 3 s clip already on the stations (drilled); fresh: each round a new "
                    "20 s siren no station has (inside the PLAY, or fetched over HTTP)")
    bf.add_argument("--database-url", help="default: a fresh SQLite file; with a PostgreSQL URL "
                    "a fresh database on that server")
    bf.add_argument("--json", help="also write the result here")
    bf.add_argument("--profile", help="write a cProfile of this process (fleet + bench) during the last "
                    "emergency here (read it with `python -m pstats`)")
    bf.add_argument("--processes", type=int, default=1, help="run the simulated stations in this many "
                    "worker processes, one event loop each (default: in the benchmark's own process)")
    bf.set_defaults(func=_runner("fanout"))

    br = bench_sub.add_parser("reconnect", help="restart the broker under N connected stations: time until "
                              "all are back, peak reconnect rate, failed attempts, the controller's health "
                              "and CPU (target at 10,000 with --processes 2: all back within 60 s)")
    br.add_argument("--devices", type=int, default=1000)
    br.add_argument("--processes", type=int, default=1, help="run the simulated stations in this many "
                    "worker processes, one event loop each (default: in the benchmark's own process)")
    br.add_argument("--deadline", type=float, default=180.0, help="seconds after the restart before the "
                    "stations still missing count as given up")
    br.add_argument("--json", help="also write the result here")
    br.set_defaults(func=_runner("reconnect"))

    bc = bench_sub.add_parser("cap-lane", help="POST of a CAP Extreme alert -> on air at a station, idle and "
                              "with two long uploads in flight (the emergency audio lane)")
    bc.add_argument("--rounds", type=int, default=5)
    bc.add_argument("--upload-minutes", type=float, default=60.0, help="length of each of the two uploads")
    bc.add_argument("--json", help="also write the result here")
    bc.set_defaults(func=_runner("cap_lane"))

    bg = bench_sub.add_parser("agent", help="one speaker agent under a CPU quota (a Raspberry-Pi budget): "
                              "RSS idle and playing, CPU per bulletin, handling p99, request -> sound")
    bg.add_argument("--rounds", type=int, default=5, help="emergencies, each with audio never fetched before")
    bg.add_argument("--seconds", type=float, default=20.0, help="length of each bulletin's audio")
    bg.add_argument("--cpu-fraction", type=float, default=0.1, help="the cap, in cores (default 0.1: a "
                    "~1 GHz Cortex-A53 core next to this machine's, see --calibrate)")
    bg.add_argument("--idle-seconds", type=float, default=5.0, help="how long idle RSS and CPU are sampled")
    bg.add_argument("--calibrate", action="store_true", help="only time the reference workload, uncapped and "
                    "capped (run it on the real board with --cpu-fraction 1 to derive the fraction)")
    bg.add_argument("--json", help="also write the result here")
    bg.set_defaults(func=_runner("agent"))

    bp = bench_sub.add_parser("panel", help="the panel's dashboard, stations and reports, N stations "
                              "(server time)")
    bp.add_argument("--stations", type=int, default=10000)
    bp.add_argument("--communes", type=int, default=250, help="communes the stations are spread over")
    bp.add_argument("--plays", type=int, default=5, help="bulletins in the play log, each on every station")
    bp.add_argument("--repeat", type=int, default=7, help="requests per page (median and max printed)")
    bp.add_argument("--database-url", help="PostgreSQL server URL (a fresh database is made on it); "
                                           "default: a fresh SQLite file")
    bp.add_argument("--json", help="also write the result here")
    bp.set_defaults(func=_runner("panel"))
