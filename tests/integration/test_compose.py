"""Static checks of the production-like stack, and one real check of its broker accounts.

docker-compose.yml (Mosquitto with dynamic security, PostgreSQL, two controllers, simulators),
docker-compose.emqx.yml (the EMQX-cluster override), Dockerfile and deploy/. No Docker engine
is needed: the files are parsed, merged and checked here. When a Compose v2 client is
installed (`docker compose`, or a standalone `docker-compose` v2), they are also validated by
it (`config -q`, which works without an engine); otherwise those tests skip.

The real part: `communecast deploy secrets` writes owner-only files, and a private Mosquitto
initialised the way the compose `broker-init` step does it (`mosquitto_ctrl dynsec init`),
then given the controller accounts by `communecast deploy broker-accounts`, lets the
controller in with the generated password.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from communecast.commands.deploy import ENV_FILE, SECRETS, read_env_file
from controller.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
EMQX_FILE = ROOT / "docker-compose.emqx.yml"

# Stand-ins for every secret `communecast deploy secrets` generates; never real values.
DUMMY_ENV = {name: f"dummy-{name.lower().replace('_', '-')}" for name in SECRETS}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
SECRET_KEY = re.compile(r"PASSWORD|SECRET|COOKIE|TOKEN", re.IGNORECASE)

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+alt}
REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
WHOLE_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\}$")
TOKEN = re.compile(r"\$\$|" + REFERENCE.pattern + r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


class MissingVariable(Exception):
    pass


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose-style variable substitution, enough to check this file."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("bare"):
            return env.get(match.group("bare"), "")
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset_or_empty = not current
        if op == ":-":
            return arg if unset_or_empty else current
        if op == "-":
            return arg if current is None else current
        if op == ":?":
            if unset_or_empty:
                raise MissingVariable(f"{name}: {arg}")
            return current
        if op == "?":
            if current is None:
                raise MissingVariable(f"{name}: {arg}")
            return current
        if op == ":+":
            return "" if unset_or_empty else arg
        if op == "+":
            return "" if current is None else arg
        return current or ""

    return TOKEN.sub(substitute, value)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Yield (path, key, value) for every mapping entry and list item in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield f"{path}[{index}]", None, value
            yield from walk(value, f"{path}[{index}]")


def environment(service: Mapping[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


class Override:
    """A `!override` value: replaces the base file's value instead of merging into it."""

    def __init__(self, value: Any) -> None:
        self.value = value


class ComposeLoader(yaml.SafeLoader):
    pass


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))  # type: ignore[arg-type]


ComposeLoader.add_constructor("!override", _override)
ComposeLoader.add_constructor("!reset", lambda loader, node: Override(None))


def load(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"{path.name} is missing"
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=ComposeLoader)  # noqa: S506
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


REPLACED = {"command", "entrypoint", "test", "profiles", "image"}


def _volume_target(volume: Any) -> str:
    return volume.split(":")[1] if isinstance(volume, str) else volume["target"]


def merge(base: Any, extra: Any, key: str = "") -> Any:
    """Compose's merge of an override file, enough for these files: mappings merge,
    `!override` and command-like keys replace, volumes merge by target, lists append."""
    if isinstance(extra, Override):
        return extra.value
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for k, v in extra.items():
            out[k] = merge(base[k], v, k) if k in base else (v.value if isinstance(v, Override) else v)
        return out
    if isinstance(base, list) and isinstance(extra, list) and key not in REPLACED:
        if key == "volumes":
            by_target = {_volume_target(v): v for v in base}
            by_target.update({_volume_target(v): v for v in extra})
            return list(by_target.values())
        return base + [v for v in extra if v not in base]
    return extra


def strip_markers(node: Any) -> Any:
    if isinstance(node, Override):
        return strip_markers(node.value)
    if isinstance(node, dict):
        return {k: strip_markers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [strip_markers(v) for v in node]
    return node


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def emqx_override() -> dict[str, Any]:
    return load(EMQX_FILE)


@pytest.fixture(scope="module")
def emqx_compose(compose: dict[str, Any], emqx_override: dict[str, Any]) -> dict[str, Any]:
    return strip_markers(merge(compose, emqx_override))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module", params=["mosquitto", "emqx"])
def stack(
    request: pytest.FixtureRequest, compose: dict[str, Any], emqx_compose: dict[str, Any]
) -> dict[str, Any]:
    """Both stacks as compose would run them (services switched off by a profile left out)."""
    document = compose if request.param == "mosquitto" else emqx_compose
    active = {n: s for n, s in document["services"].items() if "mosquitto" not in s.get("profiles", [])}
    return {**document, "services": active, "_name": request.param}


@pytest.fixture(scope="module")
def resolved(compose: dict[str, Any]) -> dict[str, Any]:
    return interpolate_tree(compose, DUMMY_ENV)


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def is_one_shot(name: str, services: Mapping[str, Mapping[str, Any]]) -> bool:
    """Runs to completion: never restarted, and awaited by another service."""
    if str(services[name].get("restart", "no")) != "no":
        return False
    return any(
        depends_on(other).get(name) == "service_completed_successfully"
        for other in services.values()
    )


def has_healthcheck(service: Mapping[str, Any]) -> bool:
    check = service.get("healthcheck")
    return bool(check) and not check.get("disable", False) and bool(check.get("test"))


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            keyword, _, args = pending.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


# --- the services ---------------------------------------------------------------------

CORE = {"broker-init", "broker", "broker-accounts", "postgres", "controller", "controller-b"}


def is_controller(service: Mapping[str, Any]) -> bool:
    command = service.get("command") or []
    return list(command[:3]) == ["communecast", "controller", "run"]


def test_stack_has_the_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert CORE | {"fleet", "stations"} <= services.keys()
    assert services["broker"]["image"].startswith("eclipse-mosquitto:2")
    assert services["broker-init"]["image"] == services["broker"]["image"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "sim" in services["stations"].get("profiles", [])
    assert "fleet" in services["fleet"].get("profiles", [])
    # The simulators are optional; the core stack is not behind a profile.
    for name in CORE:
        assert not services[name].get("profiles"), name


def test_every_service_has_a_healthcheck_or_is_a_one_shot(stack: dict[str, Any]) -> None:
    services = stack["services"]
    lacking = [
        name
        for name, service in services.items()
        if not has_healthcheck(service) and not is_one_shot(name, services)
    ]
    assert not lacking, f"{stack['_name']}: neither a healthcheck nor one-shot semantics: {lacking}"
    one_shots = {name for name in services if is_one_shot(name, services)}
    assert one_shots == ({"broker-init", "broker-accounts"} if stack["_name"] == "mosquitto" else set())


def test_depends_on_points_to_existing_services(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{stack['_name']}: {name} depends on unknown or disabled {target!r}"
            assert target != name
            assert condition in DEPENDS_CONDITIONS, f"{name} -> {target}: {condition!r}"
            if condition == "service_healthy":
                assert has_healthcheck(services[target]), f"{name} waits for {target}'s health"
            if condition == "service_completed_successfully":
                assert str(services[target].get("restart", "no")) == "no", target
            # A service in no profile must not wait for one that only runs in a profile.
            if not service.get("profiles"):
                assert not services[target].get("profiles"), f"{name} -> {target}"


def test_controllers_wait_for_database_broker_and_their_accounts(services: dict[str, dict[str, Any]]) -> None:
    for name in ("controller", "controller-b"):
        deps = depends_on(services[name])
        assert deps.get("postgres") == "service_healthy"
        assert deps.get("broker") == "service_healthy"
        assert deps.get("broker-accounts") == "service_completed_successfully"
    assert depends_on(services["broker"]).get("broker-init") == "service_completed_successfully"
    assert depends_on(services["broker-accounts"]).get("broker") == "service_healthy"


def test_two_controller_replicas_share_state_and_split_ingest(services: dict[str, dict[str, Any]]) -> None:
    """docs/scaling.md: same database, broker, key and media; own account and session; one share group."""
    a, b = environment(services["controller"]), environment(services["controller-b"])
    for key in ("COMMUNECAST_DATABASE_URL", "COMMUNECAST_MQTT_HOST", "COMMUNECAST_MQTT_SHARE_GROUP",
                "COMMUNECAST_BROKER_DYNSEC"):
        assert a[key] == b[key], key
    assert a["COMMUNECAST_MQTT_SHARE_GROUP"]
    assert a["COMMUNECAST_MQTT_CLIENT_ID"] != b["COMMUNECAST_MQTT_CLIENT_ID"]
    assert a["COMMUNECAST_MQTT_USERNAME"] != b["COMMUNECAST_MQTT_USERNAME"]
    assert a["COMMUNECAST_MQTT_PASSWORD"] != b["COMMUNECAST_MQTT_PASSWORD"]
    assert services["controller"]["volumes"] == services["controller-b"]["volumes"]
    assert depends_on(services["controller-b"]).get("controller") == "service_healthy"


def test_controllers_use_dynamic_security_with_the_accounts_broker_accounts_makes(
    services: dict[str, dict[str, Any]],
) -> None:
    """Each controller's username/password variable is exactly what broker-accounts creates."""
    command = services["broker-accounts"]["command"]
    assert command[:3] == ["communecast", "deploy", "broker-accounts"]
    made = dict(command[i + 1].split(":", 1) for i, arg in enumerate(command) if arg == "--controller")
    assert command[command.index("--host") + 1] == "broker"
    accounts_env = environment(services["broker-accounts"])
    seen = {}
    for name in ("controller", "controller-b"):
        env = environment(services[name])
        assert env["COMMUNECAST_BROKER_DYNSEC"] == "true"
        assert "COMMUNECAST_BROKER_AUTH_DIR" not in env  # no password/ACL files with dynsec
        user = env["COMMUNECAST_MQTT_USERNAME"]
        var = REFERENCE.fullmatch(env["COMMUNECAST_MQTT_PASSWORD"]).group("name")  # type: ignore[union-attr]
        assert made.get(user) == var, f"{name}: broker-accounts does not create {user} with ${var}"
        assert REFERENCE.fullmatch(accounts_env[var]).group("name") == var  # type: ignore[union-attr]
        seen[user] = var
    assert seen == made


def test_fleet_service_runs_worker_processes(services: dict[str, dict[str, Any]]) -> None:
    fleet = services["fleet"]
    command = fleet["command"]
    assert command[:3] == ["communecast", "sim", "fleet"]
    assert "--processes" in command and "--devices" in command
    env = environment(fleet)
    data_dir = env["COMMUNECAST_DATA_DIR"]
    assert any(_volume_target(v) == data_dir for v in fleet["volumes"]), "fleet data must be on a volume"
    heartbeat = env["COMMUNECAST_SIM_HEARTBEAT_FILE"]
    assert heartbeat in " ".join(fleet["healthcheck"]["test"])
    # The image creates the directory for the unprivileged user (a fresh volume copies it).
    assert data_dir in (ROOT / "Dockerfile").read_text()


def test_controller_env_vars_are_settings(stack: dict[str, Any]) -> None:
    """Every COMMUNECAST_* variable a controller service gets is a field of Settings (no typos
    that pydantic-settings would silently ignore)."""
    fields = set(Settings.model_fields)
    controllers = [n for n, s in stack["services"].items() if is_controller(s)]
    assert set(controllers) == {"controller", "controller-b"}
    for name in controllers:
        for key in environment(stack["services"][name]):
            assert key.startswith("COMMUNECAST_"), f"{name}: {key} is not a controller setting"
            field = key.removeprefix("COMMUNECAST_").lower()
            assert field in fields, f"{stack['_name']}/{name}: {key} is not in controller/core/config.py"


def test_volumes_are_declared_and_bind_sources_exist(stack: dict[str, Any]) -> None:
    declared = set(stack.get("volumes") or {})
    used: set[str] = set()
    for name, service in stack["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":")[0]
                kind = "bind" if source.startswith((".", "/")) else "volume"
            else:
                source, kind = volume["source"], volume["type"]
            if kind == "bind":
                assert (ROOT / source).exists(), f"{name}: bind source {source} is not in the repository"
                assert "secrets" not in source, f"{name}: secrets are never mounted from the repo tree"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    unused = declared - used
    if stack["_name"] == "emqx":  # the switched-off Mosquitto services' volume stays declared
        unused -= {"broker-data"}
    assert not unused, f"declared but unused volumes: {unused}"


# --- secrets --------------------------------------------------------------------------


def password_problems(document: Any) -> tuple[int, list[str]]:
    """(how many secret settings were seen, the ones that are literal)."""
    seen, problems = 0, []
    for where, key, value in walk(document):
        if isinstance(key, str) and SECRET_KEY.search(key) and not isinstance(value, dict):
            seen += 1
            if not (isinstance(value, str) and WHOLE_REFERENCE.match(value)):
                problems.append(f"{where}: {key} is not a ${{...}} reference")
        if not isinstance(value, str):
            continue
        # environment in list form: KEY=value
        env_key, sep, env_value = value.partition("=")
        if sep and SECRET_KEY.search(env_key) and re.fullmatch(r"[A-Z0-9_]+", env_key):
            seen += 1
            if not WHOLE_REFERENCE.match(env_value):
                problems.append(f"{where}: {env_key} is not a ${{...}} reference")
        # user:password@host in URLs
        for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", value):
            if not WHOLE_REFERENCE.match(match.group(1)):
                problems.append(f"{where}: literal password in a URL")
        # command-line passwords (mosquitto_sub -P ..., dynsec init's last word) come from the env
        for match in re.finditer(r"(?:^|\s)-P\s+(\S+)", value):
            if not re.fullmatch(r"\"?\$\$\{?[A-Za-z_]\w*\}?\"?", match.group(1)):
                problems.append(f"{where}: literal -P password")
        for match in re.finditer(r"dynsec init \S+ \S+ (\S+)", value):
            if not re.fullmatch(r"\"?\$\$\{?[A-Za-z_]\w*\}?\"?", match.group(1)):
                problems.append(f"{where}: literal dynsec admin password")
    return seen, problems


def test_password_check_catches_literals() -> None:
    literal = {
        "services": {
            "a": {"environment": {"DB_PASSWORD": "hunter2"}},
            "b": {"environment": ["MQTT_PASSWORD=hunter2"]},
            "c": {"environment": {"URL": "postgresql://u:hunter2@db/x"}},
            "d": {"healthcheck": {"test": ["CMD-SHELL", "mosquitto_sub -u x -P hunter2"]}},
            "e": {"command": ["sh", "-c", "mosquitto_ctrl dynsec init f.json admin hunter2"]},
            "f": {"environment": {"EMQX_NODE__COOKIE": "hunter2"}},
        }
    }
    assert len(password_problems(literal)[1]) == 6
    fine = {
        "services": {
            "a": {"environment": {"DB_PASSWORD": "${DB_PASSWORD:?set it}"}},
            "b": {"environment": ["MQTT_PASSWORD=${MQTT_PASSWORD}"]},
            "c": {"environment": {"URL": "postgresql://u:${DB_PASSWORD:?x}@db/x"}},
            "d": {"healthcheck": {"test": ["CMD-SHELL", 'mosquitto_sub -P "$$MQTT_PASSWORD"']}},
            "e": {"command": ["sh", "-c", 'mosquitto_ctrl dynsec init f.json admin "$$ADMIN_PW"']},
        }
    }
    assert password_problems(fine) == (2, [])


@pytest.mark.parametrize("path", [COMPOSE_FILE, EMQX_FILE], ids=lambda p: p.name)
def test_no_literal_secrets(path: Path) -> None:
    seen, problems = password_problems(strip_markers(load(path)))
    assert not problems
    assert seen, "no secret settings found at all: the check is looking at the wrong file"


def test_interpolation_helper() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("a${SET}b$$c", env) == "avb$c"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate("${SET:?m} ${SET:+alt} ${EMPTY:+alt}", env) == "v alt "
    with pytest.raises(MissingVariable, match="EMPTY: say so"):
        interpolate("${EMPTY:?say so}", env)
    assert interpolate("${EMPTY?fine when set}", env) == ""


def required_variables(document: Any) -> set[str]:
    return {
        m.group("name")
        for _, _, value in walk(document)
        if isinstance(value, str)
        for m in REFERENCE.finditer(value)
        if m.group("op") in (":?", "?")
    }


def test_required_secrets_are_demanded_and_generated(
    compose: dict[str, Any], emqx_compose: dict[str, Any]
) -> None:
    """Compose stops with a message when a secret is missing, and `communecast deploy secrets`
    generates every one of them (and nothing that no file uses)."""
    required = required_variables(compose)
    for secret in required:
        env = {k: v for k, v in DUMMY_ENV.items() if k != secret}
        with pytest.raises(MissingVariable, match=secret):
            interpolate_tree(compose, env)
    interpolate_tree(compose, DUMMY_ENV)  # with them all set, nothing is missing
    interpolate_tree(emqx_compose, DUMMY_ENV)
    both = required | required_variables(emqx_compose)
    assert both == set(SECRETS), "docker-compose*.yml and communecast.commands.deploy.SECRETS disagree"
    for name in both:
        assert SECRET_KEY.search(name), f"{name} is required but does not look like a secret"


def test_secrets_directory_is_git_ignored() -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run([git, "check-ignore", "-q", f"deploy/secrets/{ENV_FILE}"], cwd=ROOT,
                            capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, "deploy/secrets/ must be in .gitignore"


# --- the controller -------------------------------------------------------------------


def test_controller_database_url_is_postgresql(
    services: dict[str, dict[str, Any]], resolved: dict[str, Any]
) -> None:
    raw = environment(services["controller"])["COMMUNECAST_DATABASE_URL"]
    assert "${POSTGRES_PASSWORD" in raw
    url = urlsplit(environment(resolved["services"]["controller"])["COMMUNECAST_DATABASE_URL"])
    assert url.scheme == "postgresql+psycopg"  # the driver pyproject installs
    assert url.hostname == "postgres" and url.hostname in services
    assert url.password == DUMMY_ENV["POSTGRES_PASSWORD"]
    postgres_env = environment(services["postgres"])
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"]


def test_controller_reaches_the_broker_service(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["controller"])
    assert env["COMMUNECAST_MQTT_HOST"] == "broker"
    assert env.get("COMMUNECAST_MQTT_USERNAME")
    # inside the container it must listen on all interfaces to be reachable at all
    assert env.get("COMMUNECAST_HTTP_HOST") == "0.0.0.0"  # noqa: S104


def test_controller_healthcheck_probes_healthz(services: dict[str, dict[str, Any]]) -> None:
    for name in ("controller", "controller-b"):
        test = services[name]["healthcheck"]["test"]
        joined = " ".join(test) if isinstance(test, list) else test
        assert "http://localhost:8080/healthz" in joined
        assert "urllib" in joined  # the slim image has no curl/wget


# --- the image ------------------------------------------------------------------------


def built_services(services: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Service name -> Dockerfile path for services built from this repository."""
    out = {}
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            context, dockerfile = build, "Dockerfile"
        else:
            context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
        out[name] = (ROOT / context / dockerfile).resolve()
    return out


def test_build_context_has_a_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    built = built_services(services)
    assert "controller" in built
    for name, dockerfile in built.items():
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"


def test_dockerfile_cmd_uses_the_console_script(services: dict[str, dict[str, Any]]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert "communecast" in scripts
    for dockerfile in set(built_services(services).values()):
        instructions = dockerfile_instructions(dockerfile)
        assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
        cmds = [args for keyword, args in instructions if keyword == "CMD"]
        assert cmds, f"{dockerfile} has no CMD"
        cmd = json.loads(cmds[-1])  # exec form, so signals reach the process
        assert cmd[:3] == ["communecast", "controller", "run"]
        users = [args for keyword, args in instructions if keyword == "USER"]
        assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    for name, service in services.items():
        if "build" in service and "command" in service:
            command = service["command"]
            first = command[0] if isinstance(command, list) else command.split()[0]
            assert first == "communecast", f"{name} runs {first!r}, not the console script"


def test_dockerfile_copies_every_package(services: dict[str, dict[str, Any]]) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*").rstrip(".") for p in patterns if "." not in p.rstrip("*")}
    for dockerfile in set(built_services(services).values()):
        copied: set[str] = set()
        for keyword, args in dockerfile_instructions(dockerfile):
            if keyword != "COPY":
                continue
            parts = [p for p in args.split() if not p.startswith("--")]
            for source in parts[:-1]:
                assert (dockerfile.parent / source).exists(), f"COPY {source}: no such path"
                copied.add(source.strip("./"))
        assert "pyproject.toml" in copied
        existing = {p for p in packages if (ROOT / p).is_dir()}
        assert existing <= copied, f"packages not copied into the image: {existing - copied}"


# --- the broker -----------------------------------------------------------------------


def conf_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings.setdefault(key, []).append(value.strip())
    return settings


def mounts(service: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        out[target] = source
    return out


def test_broker_uses_dynamic_security(services: dict[str, dict[str, Any]]) -> None:
    broker, init = services["broker"], services["broker-init"]
    conf_path = ROOT / mounts(broker)["/mosquitto/config/mosquitto.conf"]
    assert conf_path == ROOT / "deploy/mosquitto/mosquitto.conf" and conf_path.is_file()
    settings = conf_settings(conf_path)
    assert [v.split()[0] for v in settings["listener"]] == ["1883"]
    assert settings["allow_anonymous"] == ["false"]
    assert "password_file" not in settings and "acl_file" not in settings
    assert settings["plugin"] == ["/usr/lib/mosquitto_dynamic_security.so"]  # eclipse-mosquitto:2
    (dynsec_file,) = settings["plugin_opt_config_file"]
    assert settings["persistence"] == ["true"]
    # The plugin's file is on a volume the init step writes and the broker keeps.
    directory = str(Path(dynsec_file).parent)
    assert mounts(broker).get(directory) == mounts(init).get(directory) == "broker-data"
    script = " ".join(init["command"])
    assert f"mosquitto_ctrl dynsec init {dynsec_file} admin" in script
    assert f"test -s {dynsec_file} ||" in script  # first start only: the plugin owns it afterwards
    assert str(init.get("restart")) == "no"
    # The health check and broker-accounts log in as that same admin.
    assert "-u admin" in " ".join(broker["healthcheck"]["test"])
    assert "--admin-user" not in services["broker-accounts"]["command"]  # the default, admin


def test_file_based_fallback_is_documented() -> None:
    settings = conf_settings(ROOT / "deploy/mosquitto/mosquitto-files.conf")
    # Issue 16: stations' listener (client id = username) and the controller's own listener.
    assert settings["per_listener_settings"] == ["true"]
    assert [v.split()[0] for v in settings["listener"]] == ["1883", "1884"]
    assert settings["allow_anonymous"] == ["false", "false"]
    assert settings["password_file"] == ["/mosquitto/config/passwd", "/mosquitto/config/services-passwd"]
    assert settings["acl_file"] == ["/mosquitto/config/acl"] * 2
    assert settings["use_username_as_clientid"] == ["true"]
    assert "plugin" not in settings
    readme = (ROOT / "deploy/mosquitto/README.md").read_text(encoding="utf-8")
    assert "mosquitto-files.conf" in readme and "communecast broker credentials" in readme
    assert "communecast deploy secrets" in readme


# --- the EMQX variant -----------------------------------------------------------------


def test_emqx_override_is_a_two_node_cluster(emqx_compose: dict[str, Any]) -> None:
    services = emqx_compose["services"]
    for name in ("broker-init", "broker", "broker-accounts"):
        assert services[name]["profiles"] == ["mosquitto"], f"{name} must be switched off"
    nodes = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("emqx/emqx:")}
    assert set(nodes) == {"emqx1", "emqx2"}
    names = set()
    for node in nodes.values():
        assert re.fullmatch(r"emqx/emqx:5\.8\.\d+", node["image"])  # open-source clustering
        env = environment(node)
        node_name = env["EMQX_NODE_NAME"]
        assert node_name == f"emqx@{node['hostname']}" and "." in node["hostname"]  # long names
        names.add(node_name)
        assert env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static"
        seeds = set(env["EMQX_CLUSTER__STATIC__SEEDS"].strip("[]").split(","))
        assert seeds == {f"emqx@{n['hostname']}" for n in nodes.values()}
        assert "broker" in node["networks"]["default"]["aliases"]  # controllers keep MQTT_HOST=broker
        assert node["hostname"] in node["networks"]["default"]["aliases"]
        assert "emqx ctl status" in " ".join(node["healthcheck"]["test"]).replace("/opt/emqx/bin/", "")
        conf = mounts(node)["/opt/emqx/etc/emqx.conf"]
        assert (ROOT / conf) == ROOT / "deploy/emqx/emqx.conf"
    assert len(names) == 2
    for name in ("controller", "controller-b"):
        env = environment(services[name])
        assert env["COMMUNECAST_BROKER_DYNSEC"] == "false"  # no plugin on EMQX
        assert env["COMMUNECAST_MQTT_HOST"] == "broker"
        deps = depends_on(services[name])
        assert deps["emqx1"] == deps["emqx2"] == "service_healthy" and "broker" not in deps
    # Only the first node publishes the dashboard/REST API, and only on loopback.
    published = [p for n in nodes.values() for p in n.get("ports", []) if "18083" in str(p)]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published)


def test_emqx_config_denies_by_default() -> None:
    text = (ROOT / "deploy/emqx/emqx.conf").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"backend\s*=\s*built_in_database", body)
    assert re.search(r"mechanism\s*=\s*password_based", body)
    assert re.search(r"no_match\s*=\s*deny", body)
    assert re.search(r"type\s*=\s*built_in_database", body)
    assert "allow_anonymous" not in body  # EMQX: no authenticator would mean anonymous access
    scaling = (ROOT / "docs/scaling.md").read_text(encoding="utf-8")
    assert "docker-compose.emqx.yml" in scaling


# --- the real thing: generated secrets, dynsec init, controller account ----------------


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "communecast.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False)


def test_deploy_secrets_writes_owner_only_files(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    result = run_cli("deploy", "secrets", "--out", str(out))
    assert result.returncode == 0, result.stderr
    path = out / ENV_FILE
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = read_env_file(path)
    assert set(values) == set(SECRETS)
    assert all(re.fullmatch(r"[0-9a-f]{48}", v) for v in values.values())
    assert len(set(values.values())) == len(values)
    # Never silently rotated: the running stack holds these passwords.
    before = path.read_text()
    again = run_cli("deploy", "secrets", "--out", str(out))
    assert again.returncode != 0 and "--force" in again.stderr
    assert path.read_text() == before
    assert not [p.name for p in out.iterdir() if p.name != ENV_FILE]  # no temporary left behind


def test_generated_dynsec_config_accepts_the_controller(tmp_path: Path) -> None:
    """broker-init + broker-accounts as compose runs them, against a real private Mosquitto."""
    from communecast.mosquitto import MosquittoNotFound, PrivateMosquitto, free_port
    from controller.services.broker_auth import DynsecAdmin, DynsecError, find_dynsec_plugin

    ctrl = shutil.which("mosquitto_ctrl")
    if ctrl is None or find_dynsec_plugin() is None:
        pytest.skip("mosquitto_ctrl or the dynamic-security plugin is not installed")
    assert run_cli("deploy", "secrets", "--out", str(tmp_path / "secrets")).returncode == 0
    secrets = read_env_file(tmp_path / "secrets" / ENV_FILE)
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    # broker-init's command, with the admin password from the generated file
    subprocess.run([ctrl, "dynsec", "init", str(broker_dir / "dynamic-security.json"), "admin",
                    secrets["MQTT_ADMIN_PASSWORD"]], check=True, capture_output=True, timeout=30)
    broker = PrivateMosquitto(broker_dir, port=free_port(), controller_user="unused",
                              controller_password="unused", dynsec=True)  # keeps the existing file
    try:
        broker.start()
    except MosquittoNotFound as exc:
        pytest.skip(str(exc))
    try:
        args = ["deploy", "broker-accounts", "--host", "127.0.0.1", "--port", str(broker.port),
                "--controller", "controller-a:MQTT_CONTROLLER_A_PASSWORD",
                "--controller", "controller-b:MQTT_CONTROLLER_B_PASSWORD"]
        first = run_cli(*args, env=secrets)
        assert first.returncode == 0, first.stderr
        assert "client controller-a created" in first.stdout
        second = run_cli(*args, env=secrets)  # every `docker compose up` runs it again
        assert second.returncode == 0 and "created" not in second.stdout, second.stdout + second.stderr

        async def check() -> None:
            import aiomqtt

            # The controller's own account can run the dynamic-security API (it manages stations) ...
            password_a = secrets["MQTT_CONTROLLER_A_PASSWORD"]
            admin = DynsecAdmin("127.0.0.1", broker.port, "controller-a", password_a)
            assert {"controller-a", "controller-b"} <= set(await admin.list_clients())
            # ... and talk on cc/v1/#, shared subscriptions included.
            async with aiomqtt.Client("127.0.0.1", broker.port, username="controller-b",
                                      password=secrets["MQTT_CONTROLLER_B_PASSWORD"]) as client:
                await client.subscribe("$share/controllers/cc/v1/dev/+/state", qos=1)
                await client.subscribe("cc/v1/grp/all/cmd", qos=1)
                await client.publish("cc/v1/grp/all/cmd", b"hello", qos=1)
                async with asyncio.timeout(10):
                    async for message in client.messages:
                        assert message.payload == b"hello"
                        break
            # A wrong password is refused.
            with pytest.raises(DynsecError):
                await DynsecAdmin("127.0.0.1", broker.port, "controller-a", "wrong", timeout=5).list_clients()

        asyncio.run(check())
    finally:
        broker.stop()


# --- the compose client itself --------------------------------------------------------

ENGINE_UNREACHABLE = re.compile(
    r"cannot connect to the docker daemon|is the docker daemon running|"
    r"error during connect|docker\.sock",
    re.IGNORECASE,
)


def compose_client() -> list[str]:
    """`docker compose`, else a standalone Compose v2 `docker-compose`; skip when neither."""
    tried = []
    docker = shutil.which("docker")
    if docker:
        version = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
        )
        if version.returncode == 0:
            return [docker, "compose"]
        tried.append((version.stderr.strip().splitlines() or ["no output"])[0])
    else:
        tried.append("no docker CLI")
    # e.g. from a pip-installed Compose v2 living beside the interpreter
    for candidate in (shutil.which("docker-compose"), Path(sys.executable).parent / "docker-compose"):
        if candidate and Path(candidate).is_file():
            version = subprocess.run(
                [str(candidate), "version"], capture_output=True, text=True, timeout=60, check=False
            )
            if version.returncode != 0 or not re.search(r"v2\.", version.stdout):
                continue
            # Some wrappers lose the exit status; such a client can't validate anything.
            broken = subprocess.run(
                [str(candidate), "-f", str(ROOT / "no-such-compose.yml"), "config", "-q"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            if broken.returncode != 0:
                return [str(candidate)]
            tried.append(f"{candidate} does not report errors in its exit status")
    pytest.skip(f"no Docker Compose v2 client here ({'; '.join(tried)})")


@pytest.mark.parametrize(("files", "profile"), [
    ((COMPOSE_FILE,), None), ((COMPOSE_FILE,), "sim"), ((COMPOSE_FILE,), "fleet"),
    ((COMPOSE_FILE, EMQX_FILE), None), ((COMPOSE_FILE, EMQX_FILE), "fleet"),
], ids=["mosquitto", "mosquitto-sim", "mosquitto-fleet", "emqx", "emqx-fleet"])
def test_docker_compose_config_validates(files: tuple[Path, ...], profile: str | None) -> None:
    client = compose_client()
    env = {**os.environ, **DUMMY_ENV}
    env.pop("COMPOSE_PROFILES", None)
    args = [*client, *(arg for f in files for arg in ("-f", str(f)))]
    if profile:
        args += ["--profile", profile]
    result = subprocess.run(
        [*args, "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    if result.returncode != 0 and ENGINE_UNREACHABLE.search(result.stderr):
        reason = result.stderr.strip().splitlines()[0]
        pytest.skip(f"docker compose needs an engine here ({reason})")
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_missing_secrets() -> None:
    client = compose_client()
    env = {k: v for k, v in os.environ.items() if k not in DUMMY_ENV}
    result = subprocess.run(
        [*client, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    if result.returncode != 0 and ENGINE_UNREACHABLE.search(result.stderr):
        pytest.skip("docker compose needs an engine here")
    assert result.returncode != 0
    assert "communecast deploy secrets" in result.stderr
