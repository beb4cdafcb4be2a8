"""The systemd units in deploy/systemd/ (docs/deployment.md): what an operator relies on when
a broker is killed, a controller crashes or an agent exits 75.

Each unit is read with configparser the way systemd reads it (keys case-sensitive, no
interpolation, no inline comments). A key repeated within a section is refused first: systemd
would merge or reset the repeats while configparser keeps only the last, so the checks below
would not see what systemd does. ExecStart must name a `communecast` subcommand that exists
(`communecast <sub> --help`, the venv's own console script).
"""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "deploy" / "systemd"
UNITS = sorted(UNIT_DIR.glob("*.service"))
DROP_INS = sorted(UNIT_DIR.glob("*.service.d/*.conf"))
COMMUNECAST_UNITS = [p for p in UNITS if p.name in {"communecast-controller.service",
                                                    "communecast-agent.service"}]  # fmt: skip
CLI = Path(sys.executable).with_name("communecast")

# A value assigned to anything called like a secret (Environment=X_PASSWORD=..., --password x,
# -P x): secrets belong in the EnvironmentFile, never in a unit that is readable by everyone.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|COOKIE|API_KEY|PRIVATE_KEY", re.IGNORECASE)
SECRET_ARG = re.compile(r"^(--?(password|passwd|secret|token)\b.*|-P)$", re.IGNORECASE)


def _section_keys(path: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            keys.setdefault(section, [])
        elif "=" in line:
            keys.setdefault(section, []).append(line.split("=", 1)[0].strip())
    return keys


def parse(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",),
                                   comment_prefixes=("#", ";"), empty_lines_in_values=False)  # fmt: skip
    cp.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    cp.read(path, encoding="utf-8")
    return cp


def seconds(value: str) -> float:
    """A systemd time span as these units write it: '3', '3s', '500ms', '1min'."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m)?", value.strip())
    assert m, f"not a simple time span: {value!r}"
    factor = {"ms": 0.001, "min": 60.0, "m": 60.0}.get(m.group(2) or "s", 1.0)
    return float(m.group(1)) * factor


def test_the_units_are_there() -> None:
    assert {p.name for p in UNITS} == {"communecast-controller.service", "communecast-mosquitto.service",
                                       "communecast-agent.service"}  # fmt: skip
    assert [p.relative_to(UNIT_DIR).as_posix() for p in DROP_INS] == ["mosquitto.service.d/restart.conf"]


@pytest.mark.parametrize("path", UNITS + DROP_INS, ids=lambda p: p.name)
def test_no_key_is_repeated_within_a_section(path: Path) -> None:
    for section, keys in _section_keys(path).items():
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        assert not repeated, f"{path.name} [{section}] repeats {repeated}"


@pytest.mark.parametrize("path", UNITS + DROP_INS, ids=lambda p: p.name)
def test_a_dead_service_is_always_started_again_after_a_pause(path: Path) -> None:
    unit = parse(path)
    restart = unit.get("Service", "Restart", fallback="no")
    assert restart in {"always", "on-failure"}, f"{path.name}: Restart={restart}"
    pause = seconds(unit.get("Service", "RestartSec", fallback=""))
    assert 1 <= pause <= 30, f"{path.name}: RestartSec={pause} (too eager or too slow)"
    # systemd's default gives up after 5 starts in 10 s; 0 means it never gives up.
    assert unit.get("Unit", "StartLimitIntervalSec", fallback=None) == "0", path.name


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_runs_as_its_own_user_with_a_read_only_system(path: Path) -> None:
    svc = parse(path)["Service"]
    assert svc.get("User", "") not in {"", "root", "0"}, f"{path.name}: no dedicated User="
    assert svc.get("NoNewPrivileges") == "true"
    assert svc.get("ProtectSystem") == "strict"
    assert svc.get("PrivateTmp") == "true"
    assert svc.get("ProtectHome") == "true"
    writable = svc.get("ReadWritePaths", "").split()
    assert writable and all(p.startswith("/var/lib/") for p in writable), f"{path.name}: {writable}"
    work = svc.get("WorkingDirectory")
    assert work is None or work in writable


@pytest.mark.parametrize("path", UNITS + DROP_INS, ids=lambda p: p.name)
def test_no_secret_is_written_in_a_unit(path: Path) -> None:
    unit = parse(path)
    for section in unit.sections():
        for key, value in unit[section].items():
            if key == "Environment":
                for assignment in shlex.split(value):
                    name = assignment.split("=", 1)[0]
                    assert not SECRET_NAME.search(name), f"{path.name}: {name} belongs in the EnvironmentFile"
            if key.startswith("Exec"):
                args = shlex.split(value.lstrip("-+!@:"))
                assert not [a for a in args if SECRET_ARG.match(a)], f"{path.name}: {key}={value}"
                assert not [a for a in args if SECRET_NAME.search(a.split("=", 1)[0]) and "=" in a]
            if key == "EnvironmentFile":
                file = value.lstrip("-")
                assert file.startswith("/etc/communecast/"), f"{path.name}: {value}"


def test_the_controller_takes_its_secrets_from_an_environment_file() -> None:
    svc = parse(UNIT_DIR / "communecast-controller.service")["Service"]
    assert svc.get("EnvironmentFile") == "/etc/communecast/controller.env"  # required: no "-"


def test_the_controller_starts_after_network_broker_and_database() -> None:
    unit = parse(UNIT_DIR / "communecast-controller.service")["Unit"]
    after = unit.get("After", "").split()
    for needed in ("network-online.target", "communecast-mosquitto.service", "mosquitto.service",
                   "postgresql.service"):  # fmt: skip
        assert needed in after, needed
    wants = unit.get("Wants", "").split()
    assert "network-online.target" in wants and "communecast-mosquitto.service" in wants
    # Requires=/BindsTo= would stop the controller whenever the broker is restarted.
    assert "Requires" not in unit and "BindsTo" not in unit


def test_the_broker_unit_runs_mosquitto_and_replaces_the_package_unit() -> None:
    unit = parse(UNIT_DIR / "communecast-mosquitto.service")
    svc = unit["Service"]
    assert svc["Restart"] == "always"
    exec_start = shlex.split(svc["ExecStart"])
    assert exec_start[:3] == ["/usr/sbin/mosquitto", "-c", "/etc/communecast/mosquitto.conf"]
    assert "mosquitto.service" in unit.get("Unit", "Conflicts", fallback="").split()
    assert int(svc["LimitNOFILE"]) >= 10_000  # one descriptor per station
    assert svc.get("ReadWritePaths") == f"/var/lib/{svc['StateDirectory']}"
    assert "WatchdogSec" not in svc  # mosquitto sends READY=1 but no watchdog pings
    drop_in = parse(UNIT_DIR / "mosquitto.service.d" / "restart.conf")["Service"]
    assert drop_in["Restart"] == "always" and int(drop_in["LimitNOFILE"]) >= 10_000


def test_the_controller_is_watched_and_the_agent_not_until_every_release_pings() -> None:
    """The controller pings (communecast/sd_notify.py, tests/integration/test_sd_notify.py): a
    hung one is restarted. The agent's code pings too, but a station may roll back to a release
    from before that did not: under WatchdogSec it would be killed every 30 s, so the agent's
    unit claims nothing until an operator adds the drop-in (docs/deployment.md, "Watchdog")."""
    ctl = parse(UNIT_DIR / "communecast-controller.service")["Service"]
    assert ctl["Type"] == "notify" and ctl["NotifyAccess"] == "main"
    assert 10 <= int(ctl["WatchdogSec"]) <= 120 and int(ctl["TimeoutStartSec"]) >= 60
    agent = parse(UNIT_DIR / "communecast-agent.service")["Service"]
    assert agent.get("Type") != "notify" and "WatchdogSec" not in agent


def _subcommand(exec_start: str) -> list[str]:
    """`.../communecast controller run --data-dir D` or `.../python -m communecast.cli agent run ...`
    -> the subcommand words."""
    args = shlex.split(exec_start)
    if Path(args[0]).name == "communecast":
        rest = args[1:]
    else:
        assert Path(args[0]).name.startswith("python") and args[1:3] == ["-m", "communecast.cli"], args
        rest = args[3:]
    words = []
    for a in rest:
        if a.startswith("-"):
            break
        words.append(a)
    return words


@pytest.mark.parametrize("path", COMMUNECAST_UNITS, ids=lambda p: p.name)
def test_exec_start_is_a_communecast_subcommand_that_exists(path: Path) -> None:
    svc = parse(path)["Service"]
    words = _subcommand(svc["ExecStart"])
    assert words in (["controller", "run"], ["agent", "run"]), words
    args = shlex.split(svc["ExecStart"])
    data_dir = args[args.index("--data-dir") + 1]
    assert data_dir in svc.get("ReadWritePaths", "").split()
    assert CLI.exists(), f"no communecast console script next to {sys.executable}"
    done = subprocess.run([str(CLI), *words, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--data-dir" in done.stdout


def test_the_agent_unit_is_the_one_docs_operations_describes() -> None:
    """Every line of the unit shown in docs/operations.md ("Restart and the service manager") is
    in the file, the boot guard too; the file only adds to it."""
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = doc[doc.index("### Restart and the service manager"):doc.index("## Signed agent updates")]
    blocks = re.findall(r"```ini\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2, "expected the unit and the boot guard line"
    text = (UNIT_DIR / "communecast-agent.service").read_text(encoding="utf-8")
    lines = {line.strip() for line in text.splitlines()}
    for block in blocks:
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                assert line in lines, f"docs/operations.md has {line!r}, the unit does not"
    svc = parse(UNIT_DIR / "communecast-agent.service")["Service"]
    assert svc["Restart"] == "on-failure"  # restarts on exit 75 (restart_agent, applied update)
    assert "75" not in svc.get("SuccessExitStatus", "").split()  # that would stop the restart


def test_the_boot_guard_the_agent_unit_runs_exists() -> None:
    """ExecStartPre runs `python -I -m device_agents.common.updater --boot-guard`: isolated mode
    must still find the module in the installed package."""
    pre = shlex.split(parse(UNIT_DIR / "communecast-agent.service")["Service"]["ExecStartPre"])
    assert pre[1:4] == ["-I", "-m", "device_agents.common.updater"] and "--boot-guard" in pre
    done = subprocess.run([sys.executable, *pre[1:4], "--help"], capture_output=True, text=True,
                          timeout=60, cwd="/")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--boot-guard" in done.stdout
