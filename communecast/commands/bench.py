from __future__ import annotations

import argparse


def _bench(args: argparse.Namespace) -> int:
    from communecast.bench import run

    return run(args)


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
    bb.set_defaults(func=_bench)

    bi = bench_sub.add_parser("ingest", help="events at rising rates into SQLite and PostgreSQL")
    bi.add_argument("--rates", default="1000,2500,5000,7500", help="offered msgs/s, comma-separated")
    bi.add_argument("--seconds", type=float, default=8.0, help="length of each step")
    bi.add_argument("--devices", type=int, default=1000)
    bi.add_argument("--backends", default="sqlite,postgres")
    bi.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                    help="server to create a fresh benchmark database on")
    bi.add_argument("--json", help="also write the results here")
    bi.set_defaults(func=_bench)

    bs = bench_sub.add_parser("sync", help="start skew across N stations for one scheduled bulletin")
    bs.add_argument("--devices", type=int, default=100)
    bs.add_argument("--lead", type=float, help="seconds from POST to start_at (default grows with N)")
    bs.add_argument("--database-url", help="default: a fresh SQLite file")
    bs.add_argument("--json", help="also write the result here")
    bs.set_defaults(func=_bench_scale)


def _bench_scale(args: argparse.Namespace) -> int:
    from communecast import bench_scale

    return {"sync": bench_scale.run_sync}[args.bench](args)
