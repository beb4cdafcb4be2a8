"""The chaos run's LED boards and their ledger (issue 18, "LED content").

A few LED boards (`led_boards`, default 3, Alpha and BX-5K in turn) run the real LED agent
(`device_agents.led.role`, its own SQLite store, MQTT to the same broker; not through a
proxy: the station faults target speakers) driving a byte-level board simulator
(`firmware_sim.led`) over a real pty; every frame the board accepts is decoded, and each change
of what it shows is noted with its real instant (`ChaosBoard.shown`). The broker and controller
faults hit them as they hit the speakers.

What they are sent during the run (the operator's API, and the emergencies' LED mirror):

- before the run, a welcome text (normal, no end);
- each virtual day: at 05:30 a notice for 06:00-18:00 (normal, with an end: it expires), at
  13:00 a text of `priority` rank with no end, cancelled by the operator at 19:00;
- each emergency carries an `led_text`: the controller mirrors it on every board (emergency
  rank) until the operator cancels the mirror, two virtual hours after the emergency played.

LED boards and the controller live in real time (only the speaker stations are accelerated), so
a window of N virtual hours is N x 3600 / speed real seconds from the instant the text is posted.

The ledger, per (text, board): `shown` (the board's decoded display had the text within its
window), `outranked` (a text of higher rank covered all but LED_MIN_S real seconds of its
window; `too_short` if its window, so far, was that short with nothing above it: a text that
begins as the run ends), `undelivered` (the controller holds no acknowledgement from the board
of a desired state naming it from before its window ended, LED_SHOW_S aside: the controller
can tell it never reached the board in time), or **`led_gap`** (it reached the board in time and
was never shown). At the end, per board:
**`led_stale`** (it shows a cancelled or expired text), **`led_wrong`** (it shows anything else
than a text that should be up now, or nothing while one should), **`led_misreported`** (the
controller's led-health says it shows something else than the board does). The bold ones break
the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from device_agents.common.clock import AcceleratedClock
from device_agents.common.config import AgentConfig
from device_agents.host.host import StationHost
from device_agents.led.role import LedRole, led_station
from device_agents.led.text import to_board_ascii
from device_agents.runner import controller_for
from firmware_sim.led.board import DisplayState
from firmware_sim.led.server import SimLedBoard
from protocol.messages import Priority
from testkit.harness import System

log = logging.getLogger(__name__)

LED_PROTOCOLS = ("alpha", "bx5k")
LED_BREAKING = ("led_gap", "led_stale", "led_wrong", "led_misreported")
LED_MIN_S = 2.5  # real seconds a text must have had, not outranked, to be expected on the board
LED_SHOW_S = 1.0  # real seconds a board takes to show a text it acknowledged (display tick 0.5 s)
HOUR = 3600.0
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class ChaosBoard:
    """One LED board: the agent and its board controller simulator on a pty."""

    def __init__(self, index: int, device_id: int, config: AgentConfig) -> None:
        self.index, self.device_id, self.config = index, device_id, config
        self.sim = SimLedBoard(config.led_protocol, None, transport="pty", width=config.led_width,
                               height=config.led_height)
        self.shown: list[tuple[float, str]] = [(time.time(), "")]  # (real instant, text) at each change
        self.sim.board.listeners.append(self._seen)
        self.host: StationHost[LedRole] | None = None

    def _seen(self, state: DisplayState) -> None:
        if state.text != self.shown[-1][1]:
            self.shown.append((time.time(), state.text))

    @property
    def showing(self) -> str:
        return self.sim.board.state.text

    async def start(self) -> None:
        await self.sim.start()
        self.host = led_station(self.config, controller_for(self.config, self.sim.url))
        await self.host.start()

    async def stop(self) -> None:
        if self.host is not None:
            try:
                await self.host.stop()
            except Exception:
                log.exception("LED board %d did not stop cleanly", self.index)
            self.host = None
        await self.sim.close()

    def had(self, text: str, start: float, end: float) -> bool:
        """The board showed `text` at some instant of [start, end] (real)."""
        for (t, shown), (t_next, _) in zip(self.shown, [*self.shown[1:], (float("inf"), "")], strict=True):
            if shown == text and t <= end and t_next >= start:
                return True
        return False


@dataclass
class LedText:
    """One text the run planned for the boards, with its real window."""

    message_id: int
    text: str
    priority: str
    start: float  # real instants: the controller and the boards live in real time
    end: float | None  # when it expired or was cancelled; None: still up
    ended_by: str  # "" | "expires" | "cancelled"
    what: str
    board_ids: list[int] = field(default_factory=list)

    @property
    def on_board(self) -> str:
        """What a text-only board shows of it (Alpha, BX-5K: without the Vietnamese marks)."""
        return to_board_ascii(self.text).text.strip()

    def up(self, at: float) -> bool:
        return self.start <= at and (self.end is None or at < self.end)

    def record(self) -> dict[str, Any]:
        return {"id": self.message_id, "text": self.text, "priority": self.priority, "what": self.what,
                "start": _iso(self.start), "end": _iso(self.end), "ended_by": self.ended_by,
                "boards": self.board_ids}


class LedPlan:
    """Posts and cancels the run's LED texts through the controller's API, noting each one."""

    def __init__(self, system: System, clock: AcceleratedClock, boards: Sequence[ChaosBoard]) -> None:
        self.system, self.clock, self.boards = system, clock, boards
        self.texts: list[LedText] = []

    def real(self, v: float) -> float:
        """The real instant of virtual instant `v` (both clocks run on from here)."""
        return time.time() + (v - self.clock.time()) / self.clock.speed

    async def _ask(self, method: str, path: str, **kw: Any) -> Any:
        """The API, asked again while the controller is down (a fault killed it)."""
        while True:
            try:
                return await self.system.api_json(method, path, **kw)
            except AssertionError:
                raise
            except Exception as exc:
                log.info("LED: %s %s not answered yet (%r); asking again", method, path, exc)
                await asyncio.sleep(0.3)

    async def post(self, text: str, priority: str, what: str, *, start_v: float | None = None,
                   end_v: float | None = None, duration_s: int = 10) -> LedText:
        """An operator's LED text for every board (tag `led`); a retry never makes a second one."""
        body: dict[str, Any] = {"text": text, "targets": {"tags": ["led"]}, "priority": priority,
                                "mode": "hold", "duration_s": duration_s}
        if start_v is not None:
            body["start_at"] = datetime.fromtimestamp(self.real(start_v), UTC).isoformat()
        if end_v is not None:
            body["end_at"] = datetime.fromtimestamp(self.real(end_v), UTC).isoformat()
        tries = 0
        while True:
            tries += 1
            try:
                if tries > 1:
                    known = [m for m in await self.system.api_json("GET", "/api/v1/led-messages")
                             if m["text"] == text]
                    if known:
                        row = known[0]
                        break
                row = await self.system.api_json("POST", "/api/v1/led-messages", json=body)
                break
            except AssertionError:
                raise
            except Exception as exc:
                log.info("LED text not posted yet (%r); retrying", exc)
                await asyncio.sleep(0.3)
        return self._note(row, what)

    def _note(self, row: dict[str, Any], what: str) -> LedText:
        start = _ts(row.get("start_at")) or _ts(row["created_at"]) or time.time()
        end = _ts(row.get("end_at"))
        lt = LedText(row["id"], row["text"], row["priority"], start, end, "expires" if end else "", what,
                     [b.device_id for b in self.boards])
        self.texts.append(lt)
        return lt

    async def mirror(self, broadcast_id: int, what: str) -> LedText | None:
        """Note an emergency's LED mirror (the controller made it with the broadcast)."""
        bc = await self._ask("GET", f"/api/v1/broadcasts/{broadcast_id}")
        message_id = (bc.get("emergency") or {}).get("led_message_id")
        if message_id is None:
            return None
        rows = [m for m in await self._ask("GET", "/api/v1/led-messages") if m["id"] == message_id]
        return self._note(rows[0], what) if rows else None

    async def cancel(self, lt: LedText) -> None:
        await self._ask("POST", f"/api/v1/led-messages/{lt.message_id}/cancel")
        if lt.end is None or time.time() < lt.end:
            lt.end, lt.ended_by = time.time(), "cancelled"

    async def day(self, v_day: float, d: int, v_end: float) -> None:
        """One virtual day's operator texts (v_day: its local midnight, virtual); what does not fit
        before `v_end` (a run of part of a day) is left out."""
        if v_day + 6 * HOUR > v_end:
            return
        await self.clock.sleep_until(v_day + 5.5 * HOUR)
        await self.post(f"Lịch tiêm chủng ngày {d + 1}: 7h–11h tại trạm y tế xã", "normal", "notice 06-18",
                        start_v=v_day + 6 * HOUR, end_v=v_day + 18 * HOUR, duration_s=1)
        if v_day + 19 * HOUR > v_end:
            return
        await self.clock.sleep_until(v_day + 13 * HOUR)
        cut = await self.post(f"Cắt điện ngày {d + 1} từ 14h đến 17h", "priority",
                              "priority 13-19 (cancelled)")
        await self.clock.sleep_until(v_day + 19 * HOUR)
        await self.cancel(cut)

    async def emergency(self, broadcast_id: int, start: float, k: int) -> None:
        """An emergency's mirror: noted now, cancelled by the operator 2 virtual hours after it played."""
        lt = await self.mirror(broadcast_id, f"emergency {k + 1} mirror (cancelled)")
        if lt is None:
            return
        await self.clock.sleep_until(start + 2 * HOUR)
        await self.cancel(lt)


@dataclass
class LedLedger:
    boards: int = 0
    planned: int = 0  # (text, board)
    outcomes: Counter[str] = field(default_factory=Counter)  # shown, outranked, undelivered
    ended: Counter[str] = field(default_factory=Counter)  # (text, board) over by the end: expires, cancelled
    end_state: list[dict[str, Any]] = field(default_factory=list)  # per board: what it shows, what it should
    texts: list[dict[str, Any]] = field(default_factory=list)
    breaking: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaking

    def count(self, kind: str) -> int:
        return sum(1 for b in self.breaking if b["kind"] == kind)

    def as_json(self) -> dict[str, Any]:
        return {"boards": self.boards, "planned": self.planned, "outcomes": dict(self.outcomes),
                "ended_not_shown": dict(self.ended), "end_state": self.end_state, "texts": self.texts,
                "breaking": {k: self.count(k) for k in LED_BREAKING}, "ok": self.ok}

    def summary(self) -> list[str]:
        if not self.boards:
            return []
        protocols = Counter(b["protocol"] for b in self.end_state)
        good = sum(1 for b in self.end_state if b["ok"])
        return [
            f"  LED: {self.boards} boards ({', '.join(f'{p} {n}' for p, n in sorted(protocols.items()))}), "
            f"{len(self.texts)} texts, {self.planned} planned (text x board): "
            + ", ".join(f"{k} {n}" for k, n in sorted(self.outcomes.items())),
            f"    at the end: {good} of {self.boards} boards show what they should "
            f"({'; '.join(sorted({repr(b['showing']) for b in self.end_state}))}); ended and not shown: "
            f"{dict(self.ended)}",
            "    breaking: " + ", ".join(f"{k} {self.count(k)}" for k in LED_BREAKING),
        ]


async def led_ledger(system: System, boards: Sequence[ChaosBoard], texts: Sequence[LedText]) -> LedLedger:
    """Every planned (text, board), and what every board shows at the end (see the module doc)."""
    ledger = LedLedger(boards=len(boards), texts=[t.record() for t in texts])
    now = time.time()
    for board in boards:
        acks = await system.api_json("GET", f"/api/v1/devices/{board.device_id}/events",
                                     params={"kind": "ack", "limit": 5000})
        acked: dict[str, float] = {}
        for ev in acks:
            for item in (ev.get("detail") or {}).get("items") or []:
                ts = _ts(ev.get("ts"))
                if ts is not None:
                    acked[item] = min(acked.get(item, ts), ts)
        mine = [t for t in texts if board.device_id in t.board_ids]
        for lt in mine:
            ledger.planned += 1
            end = min(lt.end, now) if lt.end is not None else now
            where = {"device_id": board.device_id, "board": board.index, "text": lt.text, "what": lt.what,
                     "window": [_iso(lt.start), _iso(lt.end)]}
            if board.had(lt.on_board, lt.start, end):
                ledger.outcomes["shown"] += 1
            elif _free_time(lt, mine, end) < LED_MIN_S:
                ledger.outcomes["outranked" if _free_time(lt, [], end) >= LED_MIN_S else "too_short"] += 1
            elif acked.get(f"l{lt.message_id}", float("inf")) > end - LED_SHOW_S:
                ledger.outcomes["undelivered"] += 1
            else:
                ledger.breaking.append({"kind": "led_gap", **where, "acked": _iso(acked[f"l{lt.message_id}"]),
                                        "board_showed": board.shown[-20:]})
        up = [t for t in mine if t.up(now)]
        top = max((Priority(t.priority).rank for t in up), default=None)
        should = {t.on_board for t in up if Priority(t.priority).rank == top} or {""}
        ended = {t.on_board: t for t in mine if not t.up(now)}
        for lt in ended.values():
            ledger.ended[lt.ended_by or "?"] += 1
        health = await system.api_json("GET", f"/api/v1/devices/{board.device_id}/led-health")
        showing = board.showing
        state = {"board": board.index, "device_id": board.device_id, "protocol": board.config.led_protocol,
                 "showing": showing, "should": sorted(should), "controller_says": health.get("showing"),
                 "ok": showing in should}
        ledger.end_state.append(state)
        if showing in should:
            pass
        elif showing in ended and showing not in {t.on_board for t in up}:
            ledger.breaking.append({"kind": "led_stale", **state, "ended_by": ended[showing].ended_by})
        else:
            ledger.breaking.append({"kind": "led_wrong", **state})
        if health.get("showing") != showing:
            ledger.breaking.append({"kind": "led_misreported", **state})
    return ledger


def _free_time(lt: LedText, texts: Sequence[LedText], end: float) -> float:
    """Real seconds of `lt`'s window when no text of a higher rank was up."""
    rank = Priority(lt.priority).rank
    spans = sorted((max(t.start, lt.start), min(t.end if t.end is not None else end, end)) for t in texts
                   if Priority(t.priority).rank > rank)
    free, at = 0.0, lt.start
    for s, e in spans:
        if e <= at:
            continue
        free += max(0.0, s - at)
        at = max(at, e)
    return free + max(0.0, end - at)


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, TZ).isoformat(timespec="seconds")
