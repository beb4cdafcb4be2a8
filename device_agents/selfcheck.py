"""`python -m device_agents.selfcheck --config FILE|-`: is this release fit to run the station?

The updater runs the *new* release's copy of this module after switching to it: the agent's
modules import, the config loads, and the broker answers on TCP. It prints one JSON line
(version and where the code was loaded from, so the updater can tell the new slot really
ran) and exits 0, or prints {"error": ...} and exits 1. It changes nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import socket
import sys
from importlib import metadata

MODULES = (
    "protocol.envelope",
    "protocol.ops",
    "device_agents.common.link",
    "device_agents.host.host",
    "device_agents.common.updater",
    "device_agents.speaker.role",
    "device_agents.led.role",
    "device_agents.runner",
)


def check(config_text: str, *, timeout: float) -> dict[str, object]:
    import device_agents

    for name in MODULES:
        importlib.import_module(name)
    from device_agents.common.config import AgentConfig

    config = AgentConfig(**json.loads(config_text))
    with socket.create_connection((config.mqtt_host, config.mqtt_port), timeout=timeout):
        pass
    return {
        "ok": True,
        "version": metadata.version("communecast"),
        "module": device_agents.__file__,
        "uid": config.uid,
        "broker": f"{config.mqtt_host}:{config.mqtt_port}",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="device_agents.selfcheck")
    p.add_argument("--config", required=True, help="agent config JSON file, or - for stdin")
    p.add_argument("--timeout", type=float, default=5.0)
    args = p.parse_args(argv)
    try:
        if args.config == "-":
            text = sys.stdin.read()
        else:
            with open(args.config, encoding="utf-8") as fh:
                text = fh.read()
        report = check(text, timeout=args.timeout)
    except Exception as exc:
        print(json.dumps({"ok": False, "error": f"{exc.__class__.__name__}: {exc}"[:500]}))
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
