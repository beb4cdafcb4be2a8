"""`communecast agent run | enroll | doctor`: what a technician types on the Pi."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = "/var/lib/communecast-agent"


def _config_file(args: argparse.Namespace) -> Path:
    if getattr(args, "config", None):
        return Path(args.config)
    from device_agents.enroll import config_path

    return config_path(Path(args.data_dir))


def _run(args: argparse.Namespace) -> int:
    from communecast.private import owner_only
    from device_agents.runner import run_agent

    owner_only()  # the store, media cache and logs: the agent's alone (issue 16)

    if not args.config and not args.data_dir:
        print("cần --data-dir (hoặc --config) / --data-dir (or --config) is required", file=sys.stderr)
        return 2
    path = _config_file(args)
    if not path.exists():
        print(f"Chưa kích hoạt: không có {path}. Chạy communecast agent enroll trước.\n"
              f"Not enrolled: {path} does not exist. Run communecast agent enroll first.", file=sys.stderr)
        return 2
    simulate = None
    if args.sim:  # the simulator is handed in: the agent package never imports it
        from firmware_sim.bench import open_bench

        simulate = open_bench
    return asyncio.run(_run_notified(run_agent, path, simulate))  # 75: restart requested (systemd restarts)


async def _run_notified(run_agent: Any, path: Path, simulate: Any) -> int:
    """The agent, with systemd's READY=1 once it runs and WATCHDOG=1 pings from its event loop
    (communecast/sd_notify.py; a no-op outside systemd)."""
    from communecast.sd_notify import Notifier

    notify = Notifier()
    pings: list[asyncio.Task[None]] = []

    def started() -> None:
        notify.ready("running")
        pings.append(asyncio.get_running_loop().create_task(notify.keep_alive()))

    try:
        return int(await run_agent(path, simulate=simulate, on_started=started))
    finally:
        notify.stopping()
        for task in pings:
            task.cancel()


def _enroll(args: argparse.Namespace) -> int:
    from communecast.private import owner_only
    from device_agents.enroll import EnrollError, enroll, local_text

    owner_only()

    try:
        done = asyncio.run(enroll(args.controller, args.code, Path(args.data_dir), lang=args.lang,
                                  key_fingerprint=args.key_fingerprint,
                                  trust_on_first_use=args.trust_on_first_use))
    except EnrollError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(local_text("saved", args.lang, uid=done.config.uid, name=done.name, path=done.path,
                     dir=done.config.data_dir))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from device_agents.common.config import AgentConfig
    from device_agents.doctor import Doctor, passed, report

    path = _config_file(args)
    if not path.exists():
        print(("Not enrolled: {p} does not exist." if args.lang == "en"
               else "Chưa kích hoạt: không có {p}.").format(p=path), file=sys.stderr)
        return 2
    config = AgentConfig.load(path)
    doctor = Doctor(config, path, lang=args.lang, simulated_audio=args.sim,
                    min_free_bytes=args.min_free_mb * 2**20)
    checks = asyncio.run(doctor.run())
    print(report(checks, args.lang, config.uid))
    return 0 if passed(checks) else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    agent = sub.add_parser("agent", help="the station agent (Raspberry Pi)")
    agent_sub = agent.add_subparsers(dest="action", required=True)

    run = agent_sub.add_parser("run", help="run the agent (enrolled data dir, or a config file)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--data-dir", help="the directory `agent enroll` wrote")
    where.add_argument("--config", help="agent config JSON issued by the controller")
    run.add_argument("--sim", action="store_true", help="attach firmware_sim instead of hardware")
    run.set_defaults(func=_run)

    enroll = agent_sub.add_parser("enroll", help="enroll this station with a one-time code")
    enroll.add_argument("--controller", required=True, help="the controller's URL, e.g. https://loa.example.vn")
    enroll.add_argument("--code", required=True, help="the enrollment code (dashes and case do not matter)")
    enroll.add_argument("--key-fingerprint",
                        help="the controller key's fingerprint (in the command / QR code with the code)")
    enroll.add_argument("--trust-on-first-use", action="store_true",
                        help="accept whatever key the controller sends, without a fingerprint (unsafe over "
                             "plain HTTP: an interceptor could sign updates and run code on this station)")
    enroll.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"default: {DEFAULT_DATA_DIR}")
    enroll.add_argument("--lang", choices=("vi", "en"), default="vi")
    enroll.set_defaults(func=_enroll)

    doctor = agent_sub.add_parser("doctor", help="check broker, credentials, clock, audio, RS-485, disk")
    where = doctor.add_mutually_exclusive_group()
    where.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"default: {DEFAULT_DATA_DIR}")
    where.add_argument("--config", help="agent config JSON instead of a data dir")
    doctor.add_argument("--lang", choices=("vi", "en"), default="vi")
    doctor.add_argument("--sim", action="store_true", help="audio is firmware_sim's, not ALSA")
    doctor.add_argument("--min-free-mb", type=int, default=200, help="disk space below this fails")
    doctor.set_defaults(func=_doctor)
