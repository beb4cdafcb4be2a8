"""`communecast` console script: one entry point for controller, agents, simulator, demo,
benchmarks. Each subcommand lives in communecast/commands/ and registers itself."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from communecast import commands


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="communecast", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("COMMUNECAST_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per HTTP request (clock probes, media fetches) drowns what matters; errors still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
