"""Issue 16, item 12: what the controller and the agent write is theirs alone.

Data files used to come out 0644 and directories 0755 (the process kept the login umask
022): the SQLite database, media and the agent's store were readable by every local user.
Both entry points now start with umask 077 and make their data directories 0700. Checked
on real processes: the controller of the `system` fixture (`communecast controller run`)
and an agent run with `communecast agent run --sim` until it is online."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

from testkit.harness import System
from testkit.waiting import eventually
from tests.system.test_enroll_flow import cli, fingerprint, is_online, new_code, new_station


def readable_by_others(root: Path) -> list[str]:
    """Paths under root with any group/other permission bit."""
    bad = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            bad.append(f"{oct(stat.S_IMODE(path.stat().st_mode))} {path.relative_to(root.parent)}")
    return bad


async def test_controller_and_agent_files_are_not_group_or_world_readable(
    system: System, tmp_path: Path
) -> None:
    os.umask(0o022)  # as a login shell would leave it
    device = await new_station(system, "Cụm loa quyền tệp")
    code = (await new_code(system, device["id"]))["code"]
    pi = tmp_path / "pi"
    rc, _, err = await cli(
        "agent",
        "enroll",
        "--controller",
        system.base_url,
        "--code",
        code,
        "--key-fingerprint",
        fingerprint(system),
        "--data-dir",
        str(pi),
    )
    assert rc == 0, err
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "communecast.cli", "agent", "run", "--data-dir", str(pi), "--sim",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)  # fmt: skip
    try:
        await eventually(lambda: is_online(system, device["id"]), bool, timeout=30, what="the agent online")
    finally:
        agent.send_signal(signal.SIGTERM)
        await asyncio.wait_for(agent.wait(), 20)

    assert readable_by_others(pi) == []
    controller_dir = system.root / "controller"
    assert any(controller_dir.rglob("*")), "the controller wrote nothing?"
    assert readable_by_others(controller_dir) == []


def test_the_brokers_account_files_stay_group_readable_under_umask_077(tmp_path: Path) -> None:
    """The one exception: a broker in our group reads them (docker-compose), so 0640 even under 077."""
    from controller.services.broker_auth import write, write_dynsec

    old = os.umask(0o077)
    try:
        write(tmp_path, "ctl:hash\n", "user ctl\n")
        write_dynsec(tmp_path / "dynamic-security.json", {"clients": []})
    finally:
        os.umask(old)
    for name in ("passwd", "acl", "services-passwd", "dynamic-security.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name
