"""Static checks of the production-like stack: docker-compose.yml, Dockerfile, broker config.

No Docker engine is needed. When a Compose v2 client is installed (`docker compose`, or a
standalone `docker-compose` v2), the file is also validated by it (`config -q`), which
works without an engine; otherwise those tests skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Stand-ins for the secrets the stack requires; never real values.
DUMMY_ENV = {
    "POSTGRES_PASSWORD": "dummy-postgres-password",
    "MQTT_CONTROLLER_PASSWORD": "dummy-controller-password",
    "COMMUNECAST_ADMIN_PASSWORD": "dummy-admin-password",
}
REQUIRED_SECRETS = {"POSTGRES_PASSWORD", "MQTT_CONTROLLER_PASSWORD", "COMMUNECAST_ADMIN_PASSWORD"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

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


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), "docker-compose.yml is missing"
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


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


def test_stack_has_the_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"broker", "postgres", "controller", "stations"} <= services.keys()
    assert services["broker"]["image"].startswith("eclipse-mosquitto:2")
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "sim" in services["stations"].get("profiles", [])
    # The simulator is optional; the core stack is not behind a profile.
    for name in ("broker", "postgres", "controller"):
        assert not services[name].get("profiles"), name


def test_every_service_has_a_healthcheck_or_is_a_one_shot(
    services: dict[str, dict[str, Any]],
) -> None:
    lacking = [
        name
        for name, service in services.items()
        if not has_healthcheck(service) and not is_one_shot(name, services)
    ]
    assert not lacking, f"services with neither a healthcheck nor one-shot semantics: {lacking}"


def test_depends_on_points_to_existing_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target!r}"
            assert target != name
            assert condition in DEPENDS_CONDITIONS, f"{name} -> {target}: {condition!r}"
            if condition == "service_healthy":
                assert has_healthcheck(services[target]), f"{name} waits for {target}'s health"
            if condition == "service_completed_successfully":
                assert str(services[target].get("restart", "no")) == "no", target
            # A service in no profile must not wait for one that only runs in a profile.
            if not service.get("profiles"):
                assert not services[target].get("profiles"), f"{name} -> {target}"


def test_controller_waits_for_its_database_and_broker(services: dict[str, dict[str, Any]]) -> None:
    deps = depends_on(services["controller"])
    assert deps.get("postgres") == "service_healthy"
    assert deps.get("broker") == "service_healthy"


def test_two_controller_replicas_share_state_and_split_ingest(services: dict[str, dict[str, Any]]) -> None:
    """docs/scaling.md: same database, broker, key and media; own session; one share group."""
    a, b = environment(services["controller"]), environment(services["controller-b"])
    for key in ("COMMUNECAST_DATABASE_URL", "COMMUNECAST_MQTT_HOST", "COMMUNECAST_MQTT_USERNAME",
                "COMMUNECAST_MQTT_SHARE_GROUP"):
        assert a[key] == b[key], key
    assert a["COMMUNECAST_MQTT_SHARE_GROUP"]
    assert a["COMMUNECAST_MQTT_CLIENT_ID"] != b["COMMUNECAST_MQTT_CLIENT_ID"]
    assert services["controller"]["volumes"] == services["controller-b"]["volumes"]
    assert depends_on(services["controller-b"]).get("controller") == "service_healthy"
    assert has_healthcheck(services["controller-b"])
    fleet = services["fleet"]
    assert "fleet" in fleet.get("profiles", [])
    assert fleet["command"][:3] == ["communecast", "sim", "fleet"]
    assert has_healthcheck(fleet)


# --- secrets --------------------------------------------------------------------------


def password_problems(document: Any) -> tuple[int, list[str]]:
    """(how many password settings were seen, the ones that are literal)."""
    seen, problems = 0, []
    for where, key, value in walk(document):
        if isinstance(key, str) and "PASSWORD" in key.upper() and not isinstance(value, dict):
            seen += 1
            if not (isinstance(value, str) and WHOLE_REFERENCE.match(value)):
                problems.append(f"{where}: {key} is not a ${{...}} reference")
        if not isinstance(value, str):
            continue
        # environment in list form: KEY=value
        env_key, sep, env_value = value.partition("=")
        if sep and "PASSWORD" in env_key.upper() and re.fullmatch(r"[A-Z0-9_]+", env_key):
            seen += 1
            if not WHOLE_REFERENCE.match(env_value):
                problems.append(f"{where}: {env_key} is not a ${{...}} reference")
        # user:password@host in URLs
        for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", value):
            if not WHOLE_REFERENCE.match(match.group(1)):
                problems.append(f"{where}: literal password in a URL")
        # command-line passwords (mosquitto_sub -P ...) come from the container's env
        for match in re.finditer(r"(?:^|\s)-P\s+(\S+)", value):
            if not re.fullmatch(r"\"?\$\$\{?[A-Za-z_]\w*\}?\"?", match.group(1)):
                problems.append(f"{where}: literal -P password")
    return seen, problems


def test_password_check_catches_literals() -> None:
    literal = {
        "services": {
            "a": {"environment": {"DB_PASSWORD": "hunter2"}},
            "b": {"environment": ["MQTT_PASSWORD=hunter2"]},
            "c": {"environment": {"URL": "postgresql://u:hunter2@db/x"}},
            "d": {"healthcheck": {"test": ["CMD-SHELL", "mosquitto_sub -u x -P hunter2"]}},
        }
    }
    assert len(password_problems(literal)[1]) == 4
    fine = {
        "services": {
            "a": {"environment": {"DB_PASSWORD": "${DB_PASSWORD:?set it}"}},
            "b": {"environment": ["MQTT_PASSWORD=${MQTT_PASSWORD}"]},
            "c": {"environment": {"URL": "postgresql://u:${DB_PASSWORD:?x}@db/x"}},
            "d": {"healthcheck": {"test": ["CMD-SHELL", 'mosquitto_sub -P "$$MQTT_PASSWORD"']}},
        }
    }
    assert password_problems(fine) == (2, [])


def test_no_literal_passwords(compose: dict[str, Any]) -> None:
    seen, problems = password_problems(compose)
    assert not problems
    assert seen, "no PASSWORD settings found at all: the check is looking at the wrong file"


def test_interpolation_helper() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("a${SET}b$$c", env) == "avb$c"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate("${SET:?m} ${SET:+alt} ${EMPTY:+alt}", env) == "v alt "
    with pytest.raises(MissingVariable, match="EMPTY: say so"):
        interpolate("${EMPTY:?say so}", env)
    assert interpolate("${EMPTY?fine when set}", env) == ""


def test_required_secrets_are_demanded(compose: dict[str, Any]) -> None:
    # Missing required secrets make compose stop with a message, not start with blanks.
    for secret in REQUIRED_SECRETS:
        env = {k: v for k, v in DUMMY_ENV.items() if k != secret}
        with pytest.raises(MissingVariable, match=secret):
            interpolate_tree(compose, env)
    interpolate_tree(compose, DUMMY_ENV)  # and with them all set, nothing is missing
    required = {
        m.group("name")
        for _, _, value in walk(compose)
        if isinstance(value, str)
        for m in REFERENCE.finditer(value)
        if m.group("op") in (":?", "?")
    }
    assert required == REQUIRED_SECRETS, "a new required variable needs a DUMMY_ENV entry"


# --- the controller -------------------------------------------------------------------


def test_controller_database_url_is_postgresql(
    services: dict[str, dict[str, Any]], resolved: dict[str, Any]
) -> None:
    raw = environment(services["controller"])["COMMUNECAST_DATABASE_URL"]
    assert "${POSTGRES_PASSWORD" in raw
    url = urlsplit(environment(resolved["services"]["controller"])["COMMUNECAST_DATABASE_URL"])
    assert url.scheme.split("+")[0] == "postgresql"
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
    test = services["controller"]["healthcheck"]["test"]
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


def test_broker_config(services: dict[str, dict[str, Any]]) -> None:
    broker = services["broker"]
    mounts: dict[str, str] = {}
    for volume in broker.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    conf_source = mounts["/mosquitto/config/mosquitto.conf"]
    conf_path = ROOT / conf_source
    assert conf_path == ROOT / "deploy/mosquitto/mosquitto.conf" and conf_path.is_file()

    settings: dict[str, list[str]] = {}
    for line in conf_path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings.setdefault(key, []).append(value.strip())
    assert [v.split()[0] for v in settings["listener"]] == ["1883"]
    assert settings["allow_anonymous"] == ["false"]
    assert settings["password_file"] == ["/mosquitto/config/passwd"]
    assert settings["acl_file"] == ["/mosquitto/config/acl"]
    assert settings["persistence"] == ["true"]
    # The generated files live on a volume mounted where the config points.
    assert "/mosquitto/config" in mounts
    assert (ROOT / "deploy/mosquitto/README.md").is_file()


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


@pytest.mark.parametrize("profile", [None, "sim"])
def test_docker_compose_config_validates(profile: str | None) -> None:
    client = compose_client()
    env = {**os.environ, **DUMMY_ENV}
    env.pop("COMPOSE_PROFILES", None)
    args = [*client, "-f", str(COMPOSE_FILE)]
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
    assert "PASSWORD" in result.stderr
