"""Signed agent updates: verify, install into a new slot, switch, health-check, roll back.

Layout under the agent's data dir (docs/operations.md):

    releases/<version>/      one slot per release (pip install --no-deps --no-index --target)
    releases/current  -> <version>   the release the service runs (PYTHONPATH of the unit)
    releases/previous -> <version>   what `current` pointed to before the last switch

No `current` link means the release baked into the SD-card image runs. The switch is one
atomic rename of a symlink, so a power cut leaves either the old or the new pointer. The
health check runs the *new* release's `python -m device_agents.selfcheck` (imports, config,
broker reachable, and it must report the manifest's version from inside the new slot) within
a deadline; anything else puts the previous pointer back and reports `update_rolled_back`.

Nothing here builds a shell string: every subprocess gets an argument list, and the only
inputs from the network are a manifest signed with the controller key and a wheel whose
SHA-256 that manifest names.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from device_agents.common.config import AgentConfig
from protocol.envelope import Envelope, Rejected
from protocol.messages import EventKind, RejectReason
from protocol.ops import (
    ManifestSignature,
    UpdateCommand,
    UpdateManifest,
    verify_manifest,
    version_tuple,
)
from protocol.signing import SignatureError, SignatureVerifier, Verifier, public_key_from_text

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 60.0
INSTALL_TIMEOUT_S = 600.0
BUNDLE_MEMBERS = ("manifest.json", "manifest.sig")


class UpdateRefused(Exception):
    """Nothing was installed; `code` is the event's reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Outcome:
    kind: EventKind  # UPDATE_APPLIED | UPDATE_ROLLED_BACK | UPDATE_REFUSED
    version: str | None
    reason: str | None = None
    message: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@functools.cache
def running_version() -> str:
    """The version of the code this process runs (the slot's dist-info comes first on sys.path).

    Cached: a fleet simulator builds thousands of agents, and the lookup scans sys.path."""
    try:
        return metadata.version("communecast")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class Releases:
    """The slots and the two pointers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.current = root / "current"
        self.previous = root / "previous"
        self.pending = root / "pending.json"  # applied, not yet confirmed by a run that reached the broker
        self.crashed = root / "rolled_back.json"  # written by the boot guard, reported by the next agent

    def slot(self, version: str) -> Path:
        return self.root / version

    def _target(self, link: Path) -> str | None:
        try:
            return os.readlink(link)
        except OSError:
            return None

    def current_version(self) -> str | None:
        return self._target(self.current)

    def previous_version(self) -> str | None:
        return self._target(self.previous)

    def _point(self, link: Path, version: str | None) -> None:
        if version is None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            return
        tmp = link.with_name(f".{link.name}.new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(version, tmp)  # relative: the data dir may move
        os.replace(tmp, link)  # atomic
        _fsync_dir(self.root)

    def switch(self, version: str | None) -> str | None:
        """Point `current` at `version` (None: the image's release); returns the old target."""
        old = self.current_version()
        self._point(self.current, version)
        return old

    def set_previous(self, version: str | None) -> None:
        self._point(self.previous, version)

    def prune(self, keep: set[str | None]) -> None:
        """Delete slots other than `keep` (the SD card is small)."""
        if not self.root.exists():
            return
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink() and not child.name.startswith(".") \
                    and child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_bundle(path: Path, into: Path) -> tuple[str, ManifestSignature, Path]:
    """An offline bundle (tar: manifest.json, manifest.sig, the wheel): only those members, by name."""
    import tarfile  # only offline installs read bundles: not kept in every agent's memory

    with tarfile.open(path, "r:") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}

        def read(name: str, limit: int) -> bytes:
            member = members.get(name)
            if member is None or member.size > limit:
                raise UpdateRefused("malformed", f"bundle has no usable {name}")
            fh = tar.extractfile(member)
            assert fh is not None
            return fh.read()

        manifest_text = read("manifest.json", 8192).decode("utf-8")
        try:
            signature = ManifestSignature.model_validate_json(read("manifest.sig", 1024))
            wheel_name = UpdateManifest.model_validate(json.loads(manifest_text)).wheel
        except (ValidationError, ValueError) as exc:
            raise UpdateRefused("malformed", f"bundle manifest unreadable: {exc}") from exc
        into.mkdir(parents=True, exist_ok=True)
        wheel = into / wheel_name  # the name matched a strict pattern: no path parts
        wheel.write_bytes(read(wheel_name, 200 * 1024 * 1024))
    return manifest_text, signature, wheel


class Updater:
    """One update at a time; outcomes are events (update_applied / _rolled_back / _refused)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        emit: Callable[..., None] | None = None,
        on_applied: Callable[[], Awaitable[None]] | None = None,
        python: str = sys.executable,
        health_timeout_s: float = HEALTH_TIMEOUT_S,
        current_version: str | None = None,
        verifier: SignatureVerifier | None = None,
    ) -> None:
        """`verifier`: the station's trusted keys, following rotations (common/trust.py); by
        default only the config's `controller_public_keys`."""
        self.cfg = config
        self.emit = emit
        self.on_applied = on_applied
        self.python = python
        self.health_timeout_s = health_timeout_s
        self.current_version = current_version or running_version()
        self.releases = Releases(config.data_dir / "releases")
        self._verifier: SignatureVerifier = verifier or Verifier(
            [public_key_from_text(k) for k in config.controller_public_keys])
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.outcomes: list[Outcome] = []

    # -- from the network ---------------------------------------------------------------------------
    def accept(self, env: Envelope) -> None:
        """Start applying an `update` command (already verified by the gate)."""
        try:
            cmd = UpdateCommand.model_validate(env.body)
        except ValidationError as exc:
            raise Rejected(RejectReason.MALFORMED, f"update: {str(exc)[:200]}", env.id) from exc
        task = asyncio.get_running_loop().create_task(self._run(env.id, cmd), name="agent-update")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, ref: str, cmd: UpdateCommand) -> None:
        if self._lock.locked():
            outcome = Outcome(EventKind.UPDATE_REFUSED, None, "busy", "another update is being applied")
        else:
            outcome = await self.apply_command(cmd)
        self._report(outcome, ref)
        if outcome.kind is EventKind.UPDATE_APPLIED and not outcome.detail.get("already_running") \
                and self.on_applied is not None:
            await self.on_applied()

    def _report(self, outcome: Outcome, ref: str | None) -> None:
        self.outcomes.append(outcome)
        log.log(logging.INFO if outcome.kind is EventKind.UPDATE_APPLIED else logging.WARNING,
                "update %s: %s %s", outcome.version, outcome.kind.value, outcome.message or "")
        if self.emit is not None:
            self.emit(outcome.kind, ref=ref, reason=outcome.reason,
                      detail={"version": outcome.version, "message": outcome.message, **outcome.detail})

    async def apply_command(self, cmd: UpdateCommand) -> Outcome:
        async with self._lock:
            try:
                manifest = self._verify(cmd.manifest, cmd.signature)
                wheel = await self._download(cmd.wheel_url, manifest)
            except UpdateRefused as exc:
                return Outcome(EventKind.UPDATE_REFUSED, _peek_version(cmd.manifest), exc.code, str(exc))
            return await self._install(manifest, wheel)

    async def apply_bundle(self, bundle: Path) -> Outcome:
        """The offline path (`communecast update install`): the same checks, from a file."""
        import tarfile  # the offline path only (see read_bundle)

        async with self._lock:
            staging = self.releases.root / ".download"
            try:
                text, signature, wheel = await asyncio.to_thread(read_bundle, bundle, staging)
                manifest = self._verify(text, signature)
                await self._check_wheel(wheel, manifest)
            except UpdateRefused as exc:
                return Outcome(EventKind.UPDATE_REFUSED, None, exc.code, str(exc))
            except (tarfile.TarError, OSError) as exc:
                return Outcome(EventKind.UPDATE_REFUSED, None, "malformed", f"not a bundle: {exc}")
            return await self._install(manifest, wheel)

    # -- checks ---------------------------------------------------------------------------------------
    def _verify(self, text: str, signature: ManifestSignature) -> UpdateManifest:
        try:
            manifest = verify_manifest(text, signature, self._verifier)
        except SignatureError as exc:
            raise UpdateRefused("bad_signature", f"manifest signature refused: {exc}") from exc
        except ValueError as exc:
            raise UpdateRefused("malformed", str(exc)) from exc
        if version_tuple(self.current_version) < version_tuple(manifest.min_agent_version):
            raise UpdateRefused("agent_too_old", f"release {manifest.version} needs agent >= "
                                f"{manifest.min_agent_version}, this is {self.current_version}")
        return manifest

    async def _check_wheel(self, wheel: Path, manifest: UpdateManifest) -> None:
        digest = await asyncio.to_thread(sha256_file, wheel)
        if digest != manifest.sha256:
            wheel.unlink(missing_ok=True)
            raise UpdateRefused("sha256_mismatch", f"wheel hashes to {digest[:16]}…, the signed manifest "
                                f"says {manifest.sha256[:16]}…")

    async def _download(self, url: str, manifest: UpdateManifest) -> Path:
        if url.startswith("/"):
            url = self.cfg.controller_url.rstrip("/") + url
        if not url.startswith(("http://", "https://")):
            raise UpdateRefused("malformed", "wheel_url must be http(s)")
        folder = self.releases.root / ".download"
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"{manifest.sha256}.part"
        size = 0
        h = hashlib.sha256()
        try:
            async with httpx.AsyncClient(timeout=60) as http, http.stream("GET", url) as r:
                if r.status_code != 200:
                    raise UpdateRefused("download_failed", f"GET {url} -> {r.status_code}")
                with part.open("wb") as out:
                    async for chunk in r.aiter_bytes():
                        size += len(chunk)
                        if size > manifest.size:
                            raise UpdateRefused("sha256_mismatch", "wheel is larger than the manifest says")
                        h.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            part.unlink(missing_ok=True)
            raise UpdateRefused("download_failed", f"GET {url}: {exc}") from exc
        except UpdateRefused:
            part.unlink(missing_ok=True)
            raise
        if h.hexdigest() != manifest.sha256:
            part.unlink(missing_ok=True)
            raise UpdateRefused("sha256_mismatch", f"wheel hashes to {h.hexdigest()[:16]}…, the signed "
                                f"manifest says {manifest.sha256[:16]}…")
        wheel = folder / manifest.wheel
        os.replace(part, wheel)
        return wheel

    # -- install, switch, check, roll back ---------------------------------------------------------------
    async def _install(self, manifest: UpdateManifest, wheel: Path) -> Outcome:
        version = manifest.version
        rel = self.releases
        if version == self.current_version and rel.current_version() in (version, None):
            wheel.unlink(missing_ok=True)
            return Outcome(EventKind.UPDATE_APPLIED, version, None, "already running",
                           {"already_running": True})
        staging = rel.root / f".staging-{version}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            await self._pip_install(wheel, staging)
        except UpdateRefused as exc:
            shutil.rmtree(staging, ignore_errors=True)
            return Outcome(EventKind.UPDATE_REFUSED, version, exc.code, str(exc))
        finally:
            wheel.unlink(missing_ok=True)
        slot = rel.slot(version)
        if rel.current_version() == version:
            # Reinstalling what `current` points to: step off it while the slot is replaced.
            rel.switch(rel.previous_version())
        shutil.rmtree(slot, ignore_errors=True)
        os.replace(staging, slot)
        previous = rel.switch(version)
        ok, why, report = await self.health_check()
        if not ok:
            rel.switch(previous)
            shutil.rmtree(slot, ignore_errors=True)
            return Outcome(EventKind.UPDATE_ROLLED_BACK, version, "health_check_failed", why,
                           {"restored": previous or "image", "check": report})
        rel.set_previous(previous)
        rel.prune({version, previous})
        _write_json(rel.pending, {"version": version, "previous": previous, "boots": 0})
        return Outcome(EventKind.UPDATE_APPLIED, version, None, "health check passed",
                       {"previous": previous or "image", "check": report})

    async def _pip_install(self, wheel: Path, target: Path) -> None:
        args = [self.python, "-m", "pip", "install", "--no-deps", "--no-index", "--no-input",
                "--disable-pip-version-check", "--no-warn-script-location", "--quiet",
                "--target", str(target), str(wheel)]
        code, out = await _run(args, timeout=INSTALL_TIMEOUT_S)
        if code != 0:
            raise UpdateRefused("install_failed", f"pip exited {code}: {out[-500:]}")

    async def health_check(self) -> tuple[bool, str, dict[str, Any]]:
        """Run the release `current` points at, in a fresh interpreter, within the deadline."""
        current = self.releases.current
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(current)
        args = [self.python, "-m", "device_agents.selfcheck", "--config", "-"]
        config_json = self.cfg.model_dump_json().encode()  # via stdin: the password stays off argv
        code, out = await _run(args, timeout=self.health_timeout_s, env=env, cwd=current, stdin=config_json)
        report: dict[str, Any] = {}
        for line in reversed(out.strip().splitlines()):
            with contextlib.suppress(ValueError):
                candidate = json.loads(line)
                if isinstance(candidate, dict):
                    report = candidate
                    break
        if code is None:
            return False, f"health check did not finish within {self.health_timeout_s:.0f} s", report
        if code != 0:
            return False, f"health check exited {code}: {report.get('error') or out[-300:]}", report
        expected = self.releases.current_version()
        if report.get("version") != expected:
            return False, f"health check ran version {report.get('version')!r}, expected {expected!r}", report
        module = str(report.get("module") or "")
        if not Path(module).resolve().is_relative_to(current.resolve()):
            return False, f"health check loaded code from {module}, not from the new release", report
        return True, "ok", report

    async def watch_boot(self, connected: asyncio.Event) -> None:
        """At agent start: report a crash-loop rollback the boot guard did; once this run has
        reached the broker, the release it runs is confirmed (the guard stops counting)."""
        crashed = _read_json(self.releases.crashed)
        if crashed is not None:
            self._report(Outcome(EventKind.UPDATE_ROLLED_BACK, str(crashed.get("version")), "crash_loop",
                                 f"the release did not reach the broker in {crashed.get('boots')} starts",
                                 {"restored": crashed.get("restored") or "image"}), None)
            self.releases.crashed.unlink(missing_ok=True)
        if not self.releases.pending.exists():
            return
        await connected.wait()
        self.releases.pending.unlink(missing_ok=True)
        log.info("release %s confirmed: this run reached the broker", self.releases.current_version())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _run(
    args: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None,
    stdin: bytes | None = None,
) -> tuple[int | None, str]:
    """Run an argument list (never a shell); (exit code or None on timeout, combined output)."""
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        cwd=str(cwd) if cwd else None)  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None, ""
    return proc.returncode, out.decode("utf-8", "replace")


def _peek_version(text: str) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        value = json.loads(text).get("version")
        return value if isinstance(value, str) else None
    return None


def write_bundle(out: Path, manifest_text: str, signature: ManifestSignature, wheel: Path) -> None:
    """The offline bundle: a plain tar (the wheel is compressed already)."""
    import tarfile  # the release tooling's, never a running agent's

    with tarfile.open(out, "w:") as tar:
        for name, data in (("manifest.json", manifest_text.encode()),
                           ("manifest.sig", signature.model_dump_json().encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        tar.add(wheel, arcname=wheel.name, recursive=False)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def boot_guard(data_dir: Path, *, max_boots: int = 3) -> str | None:
    """Run by the service manager before each start (`ExecStartPre=`, the image's Python, -I).

    A release that passed its health check but never reaches the broker (it crashes at
    start, or cannot connect) is started at most `max_boots` times; then `current` goes
    back to the previous release and the next agent reports `update_rolled_back`
    (`crash_loop`). Returns what it did, for the journal.
    """
    rel = Releases(data_dir / "releases")
    pending = _read_json(rel.pending)
    if pending is None:
        return None
    version = str(pending.get("version"))
    if rel.current_version() != version:
        rel.pending.unlink(missing_ok=True)  # someone switched by hand: nothing to guard
        return f"pending {version} is not current; guard cleared"
    boots = int(pending.get("boots", 0)) + 1
    if boots <= max_boots:
        _write_json(rel.pending, {**pending, "boots": boots})
        return f"release {version}: start {boots} of {max_boots} before confirmation"
    previous = pending.get("previous")
    rel.switch(previous if isinstance(previous, str) else None)
    rel.set_previous(None)
    shutil.rmtree(rel.slot(version), ignore_errors=True)
    _write_json(rel.crashed, {"version": version, "boots": boots - 1, "restored": previous})
    rel.pending.unlink(missing_ok=True)
    back = previous or "image"
    return f"release {version} never reached the broker in {boots - 1} starts: rolled back to {back}"


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="device_agents.common.updater")
    p.add_argument("--boot-guard", action="store_true", required=True)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--max-boots", type=int, default=3)
    args = p.parse_args(argv)
    done = boot_guard(args.data_dir, max_boots=args.max_boots)
    if done:
        print(done)
    return 0  # never keep the agent from starting


if __name__ == "__main__":
    sys.exit(main())
