from __future__ import annotations

import argparse
import asyncio
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from device_agents.runner import run_agent

    asyncio.run(run_agent(Path(args.config), simulated=args.sim))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    agent = sub.add_parser("agent", help="the station agent (Raspberry Pi)")
    agent_sub = agent.add_subparsers(dest="action", required=True)
    run = agent_sub.add_parser("run", help="run the agent from its config file")
    run.add_argument("--config", required=True, help="agent config JSON issued by the controller")
    run.add_argument("--sim", action="store_true", help="attach firmware_sim instead of hardware")
    run.set_defaults(func=_run)
