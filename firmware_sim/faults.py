"""Faults a test (or a demo operator) can switch on in simulated station hardware.

How to inject them (docs/health.md):

- in Python: ``station.hardware.faults.set("mains_loss", True)`` (tests, the System harness);
- from the command line: ``communecast sim stations --fault overheat`` switches a fault on
  in every simulated station from the start;
- over HTTP/JSON while the stations run: ``communecast sim stations --control 127.0.0.1:7070``
  serves ``GET /faults`` (every station's switches) and ``POST /faults/<uid>`` with a JSON
  object such as ``{"cut_speaker_line": true}`` (``<uid>`` = ``all`` for every station).
  It listens on loopback by default and is a simulator tool: never expose it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from device_agents.common.clock import Clock

log = logging.getLogger(__name__)

CLOCK_DRIFT_S = 0.25  # what `clock_drift` puts between the station's clock and true time


@dataclass
class Faults:
    """Mutable fault switches shared by the serial line, the cabinet and the sink.

    One object is shared so flipping a switch takes effect on the next byte or reading.
    """

    no_reply: bool = False  # the RS-485 bus swallows every reply (cable unplugged)
    garble: bool = False  # replies arrive with flipped bits (noise, bad termination)
    garble_requests: bool = False  # so do the requests the device gets (noise on the whole bus)
    cut_speaker_line: bool = False  # amplifier idles even while audio plays
    mains_loss: bool = False  # meter reads 0 V / 0 A
    overheat: bool = False  # cabinet sensor reads 68 °C
    clock_drift: bool = False  # the station's wall clock runs CLOCK_DRIFT_S ahead (NTP lost)

    def set(self, name: str, value: bool) -> None:
        """Switch a fault by name; unknown names are an error, not a silent no-op."""
        names = self.names()
        if name not in names:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(names))}")
        if not isinstance(value, bool):
            raise TypeError(f"fault {name!r} takes a bool, got {value!r}")
        setattr(self, name, value)

    def as_dict(self) -> dict[str, bool]:
        """Current switches, e.g. for a status page or a test failure message."""
        return asdict(self)

    @classmethod
    def names(cls) -> frozenset[str]:
        """All fault names."""
        return frozenset(f.name for f in fields(cls))


class DriftingClock(Clock):
    """The simulated station's wall clock: true time, plus CLOCK_DRIFT_S while `clock_drift` is on.

    The agent schedules and measures its clock offset (device_agents/common/clock_offset.py)
    through it, so a drifted station really plays early and really reports the offset.
    """

    def __init__(self, faults: Faults, base: Clock | None = None) -> None:
        self._faults = faults
        self._base = base or Clock()
        self.speed = self._base.speed

    def time(self) -> float:
        return self._base.time() + (CLOCK_DRIFT_S if self._faults.clock_drift else 0.0)


class FaultControl:
    """A tiny HTTP/JSON control for the faults of running simulated stations (thread-based)."""

    def __init__(
        self, stations: Callable[[], dict[str, Faults]], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._stations = stations
        control = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/") != "/faults":
                    return self._reply(404, {"error": "GET /faults or POST /faults/<uid|all>"})
                self._reply(200, {uid: f.as_dict() for uid, f in control._stations().items()})

            def do_POST(self) -> None:
                prefix = "/faults/"
                if not self.path.startswith(prefix):
                    return self._reply(404, {"error": "POST /faults/<uid|all>"})
                uid = self.path[len(prefix):].strip("/")
                known = control._stations()
                targets = list(known.values()) if uid == "all" else [known[uid]] if uid in known else []
                if not targets:
                    return self._reply(404, {"error": f"no simulated station {uid!r}"})
                try:
                    length = min(int(self.headers.get("Content-Length") or 0), 10_000)
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if not isinstance(body, dict):
                        raise TypeError("a JSON object of fault names to true/false")
                    for faults in targets:
                        for name, value in body.items():
                            faults.set(name, value)
                except (ValueError, TypeError) as exc:
                    return self._reply(400, {"error": str(exc)})
                self._reply(200, {u: f.as_dict() for u, f in known.items() if uid in ("all", u)})

            def _reply(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("fault control: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-control", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultControl:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
