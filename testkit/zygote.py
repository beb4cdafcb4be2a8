"""Controllers forked from one process that has already imported them, for the test suite.

Every system test starts a real controller process, and 1.25 s of the 1.7 s of CPU such a
start costs is importing the controller (FastAPI, SQLAlchemy, Alembic, the routes); the suite
is CPU-bound on two cores and starts over a hundred of them. Each test worker therefore keeps
one "zygote": `python -m testkit.zygote` imports the controller once, then forks a child per
start, which sets the test's environment and log file and runs `communecast controller run`
exactly as the command line would (same code from `main` on: settings from the environment,
umask, uvicorn and its signal handlers). Benchmarks keep a plain subprocess
(`ControllerProcess(fork=False)`): their CPU and memory figures stay those of a command-line
start.

The worker talks to the zygote over its stdin/stdout (one JSON line each way per start) and
holds the child through a pidfd (Linux 5.3+): it can signal it and see it end, as with a
`Popen`, though the zygote is the parent that reaps it and writes its exit status next to
its log (`<log>.exit`). The zygote ends when its worker does (EOF on stdin, or the parent-
death signal), and its children get SIGTERM when it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

# Set to "1" (tests/conftest.py) to have testkit.harness fork its controllers from a zygote.
FORK_ENV = "COMMUNECAST_TESTKIT_FORK_CONTROLLERS"
_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int) -> None:
    """prctl(PR_SET_PDEATHSIG): `sig` when the process that started this one ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


class ForkedProcess:
    """The part of `subprocess.Popen` the harness uses, for a child of the zygote."""

    def __init__(self, pid: int, exit_file: Path) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exit_file = exit_file
        self._fd: int | None = None
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:  # it ended, and the zygote reaped it, before we looked
            self._ended()

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._fd], [], [], 0)[0]:
            self._ended()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._fd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"controller {self.pid}", timeout or 0.0)
            self._ended()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # already gone
                signal.pidfd_send_signal(self._fd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _ended(self) -> None:
        """The child is gone; its status comes from the zygote, which reaps it a moment later."""
        deadline = time.monotonic() + 2.0
        self.returncode = -1  # unless the zygote says (it is gone itself, or slower than 2 s)
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):  # not there yet, or half written
                self.returncode = int(self._exit_file.read_text())
                break
            time.sleep(0.01)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Zygote:
    """One per test worker, started on first use (`Zygote.shared()`)."""

    _shared: Zygote | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "testkit.zygote"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> Zygote:
        with cls._shared_lock:
            if cls._shared is None or cls._shared._proc.poll() is not None:
                cls._shared = cls()
            return cls._shared

    def spawn(self, env: dict[str, str], log_path: Path) -> ForkedProcess:
        """`communecast controller run` with exactly `env`, its output appended to `log_path`."""
        exit_file = log_path.with_name(log_path.name + f".{time.monotonic_ns()}.exit")
        log_path.open("ab").close()  # there from the start, as with a Popen's output file
        request = {"env": env, "log": str(log_path), "exit": str(exit_file)}
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        with self._lock:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
            answer = stdout.readline()
        if not answer:
            raise RuntimeError(f"the controller zygote ended (exit {self._proc.poll()})")
        return ForkedProcess(json.loads(answer)["pid"], exit_file)


# -- the zygote process --------------------------------------------------------------------------
def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    import random

    import uvicorn  # noqa: F401

    import communecast.cli
    import controller.app  # noqa: F401  (the imports every start would otherwise pay for)
    from controller.api.routes import all_routers

    all_routers()  # imports the route modules, which build their routes as they load
    exit_files: dict[int, str] = {}

    def reap(_sig: int, _frame: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            path = exit_files.pop(pid, None)
            if path is not None:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
                os.close(fd)

    signal.signal(signal.SIGCHLD, reap)
    for line in requests:
        request = json.loads(line)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # the pid is noted before it is reaped
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _die_with_parent(signal.SIGTERM)
            os.environ.clear()
            os.environ.update(request["env"])
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            random.seed()  # not the zygote's sequence in every controller
            code = 1
            try:
                code = communecast.cli.main(["controller", "run"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        exit_files[pid] = request["exit"]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        answers.write(json.dumps({"pid": pid}).encode() + b"\n")
        answers.flush()
    for pid in list(exit_files):  # the worker is gone: so are the controllers it left running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    _die_with_parent(signal.SIGTERM)
    _serve(sys.stdin.buffer, sys.stdout.buffer)
