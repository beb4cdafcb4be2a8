"""LED-board controllers as the agent's serial line sees them: frames in, replies out.

Each simulator parses the bytes from a pty or TCP line (firmware_sim.serial_line), checks
the checksum/CRC, answers as the device does, keeps what is on the display and renders it
to PNG with the same bitmap code the controller's preview uses. Bad frames are rejected
and counted; the display keeps its previous content.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from device_agents.led import alpha, bx5k
from device_agents.led.bitmap import render
from firmware_sim.faults import Faults

log = logging.getLogger(__name__)


@dataclass
class DisplayState:
    protocol: str
    text: str = ""
    mode: str = "hold"
    color: str = "amber"
    brightness: int = 100
    frames_ok: int = 0
    frames_rejected: int = 0
    last_good_at: float | None = None
    reboots: int = 0
    temperature_c: float = 31.0
    history: list[str] = field(default_factory=list)  # texts shown, newest last (bounded)


class LedBoardSim:
    """Shared part: state, persistence (state.json, current.png), faults, waiting in tests."""

    protocol = "?"

    def __init__(self, state_dir: Path | None = None, *, width: int = 128, height: int = 32,
                 faults: Faults | None = None) -> None:
        self.state = DisplayState(self.protocol)
        self.state_dir = state_dir
        self.width, self.height = width, height
        self.faults = faults if faults is not None else Faults()
        self.listeners: list[Callable[[DisplayState], None]] = []
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
        self._persist(render_png=True)

    # -- display changes ----------------------------------------------------------------------
    def _show(self, text: str, *, mode: str | None = None, color: str | None = None) -> None:
        changed = text != self.state.text or (color and color != self.state.color)
        self.state.text = text
        if mode:
            self.state.mode = mode
        if color:
            self.state.color = color
        if changed:
            self.state.history = [*self.state.history[-49:], text]
        self._persist(render_png=bool(changed))

    def _good(self) -> None:
        self.state.frames_ok += 1
        self.state.last_good_at = time.time()
        self._persist(render_png=False)  # counters in state.json stay current

    def _rejected(self, why: object) -> None:
        self.state.frames_rejected += 1
        log.info("%s sim rejected a frame: %s", self.protocol, why)
        self._persist(render_png=False)

    def reboot(self) -> None:
        """Power cycle: RAM content (what is shown, runtime settings) is gone."""
        self.state.reboots += 1
        self._reset_ram()
        self._show("")

    def _reset_ram(self) -> None:
        pass

    def png(self) -> bytes:
        from device_agents.led.bitmap import render_png

        return render_png(self.state.text, width=self.width, height=self.height, color=self.state.color,
                          brightness=self.state.brightness)

    def _persist(self, *, render_png: bool) -> None:
        for cb in list(self.listeners):
            cb(self.state)
        if self.state_dir is None:
            return
        tmp = self.state_dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self.state), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.state_dir / "state.json")
        if render_png:
            img = render(self.state.text, width=self.width, height=self.height, color=self.state.color,
                         brightness=self.state.brightness)
            img.save(self.state_dir / "current.png.tmp", format="PNG")
            os.replace(self.state_dir / "current.png.tmp", self.state_dir / "current.png")


# -- Alpha ------------------------------------------------------------------------------------------
def _alpha_visible(raw: bytes) -> tuple[str, str | None]:
    """Printable text of an Alpha message and its colour, skipping embedded control codes."""
    out: list[str] = []
    color: str | None = None
    i = 0
    while i < len(raw):
        b = raw[i]
        if b == 0x1C and i + 1 < len(raw):  # colour
            color = alpha.COLOR_NAMES.get(raw[i + 1], color)
            i += 2
            continue
        if b in (0x1A, 0x1D, 0x1E, 0x0B) and i + 1 < len(raw):  # font, attributes, spacing... + 1 byte
            i += 2
            continue
        if b == 0x1B and i + 2 < len(raw):  # a new page inside the file: ESC position mode
            i += 3
            out.append(" ")
            continue
        if 0x20 <= b < 0x7F:
            out.append(chr(b))
        i += 1
    return "".join(out).strip(), color


class AlphaSignSim(LedBoardSim):
    protocol = "alpha"

    def __init__(self, *a: Any, **kw: Any) -> None:
        self._parser = alpha.AlphaParser()
        self.files: dict[str, tuple[str, bytes]] = {}
        self.ack_nak = False
        self.clock: str | None = None
        self.memory: list[tuple[str, int]] = []
        super().__init__(*a, **kw)

    def _reset_ram(self) -> None:
        self.files.clear()
        self.ack_nak = False

    def feed(self, data: bytes, reply: Callable[[bytes], None]) -> None:
        for pkt in self._parser.feed(data):
            if isinstance(pkt, Exception):
                self._rejected(pkt)
                self._answer(reply, ok=False)
                continue
            if any(c.checksum_ok is False for c in pkt.commands):
                self._rejected("checksum")
                self._answer(reply, ok=False)
                continue
            if pkt.type_code not in (b"Z", b"?", b"0", b"!") and not pkt.type_code.isalnum():
                self._rejected("type code")
                continue
            ok = all(self._apply(c) for c in pkt.commands)
            if ok:
                self._good()
                self._refresh()
            else:
                self._rejected("unsupported command")
            self._answer(reply, ok=ok)

    def _answer(self, reply: Callable[[bytes], None], *, ok: bool) -> None:
        if self.ack_nak:
            reply(bytes([alpha.ACK, 0x00]) if ok else bytes([alpha.NAK, 0x10]))

    def _apply(self, cmd: alpha.AlphaCommand) -> bool:
        if cmd.code == alpha.WRITE_TEXT and len(cmd.data) >= 1:
            label = chr(cmd.data[0])
            body = cmd.data[1:]
            mode = "hold"
            if len(body) >= 3 and body[0] == alpha.ESC:
                mode = alpha.MODE_NAMES.get(body[2], "special")
                body = body[3:]
            self.files[label] = (mode, body)
            return True
        if cmd.code == alpha.WRITE_SPECIAL and cmd.data:
            fn, arg = cmd.data[0:1], cmd.data[1:]
            if fn == alpha.SF_ACK_NAK:
                self.ack_nak = arg[:1] == b"1"
            elif fn == alpha.SF_TIME:
                self.clock = arg.decode("ascii", "replace")
            elif fn == alpha.SF_MEMORY:
                if arg in (b"", b"$$$"):  # empty configuration; alphasignpy sends "$$$"
                    self.files = {k: v for k, v in self.files.items() if k == alpha.PRIORITY_LABEL}
                    self.memory = []
                else:
                    self.memory = [(chr(arg[i]), int(arg[i + 3 : i + 7], 16))
                                   for i in range(0, len(arg) - 10, 11)]
            elif fn == alpha.SF_DIMMING and len(arg) >= 4:
                level = int(arg[2:4])
                self.state.brightness = alpha.DIM_LEVELS[min(level, 4)]
            else:
                return False
            return True
        return False

    def _refresh(self) -> None:
        prio = self.files.get(alpha.PRIORITY_LABEL)
        chosen = prio if prio and prio[1] else self.files.get("A") or next(iter(self.files.values()), None)
        if chosen is None:
            self._show("")
            return
        text, color = _alpha_visible(chosen[1])
        self._show(text, mode=chosen[0], color=color)


# -- BX-5K ---------------------------------------------------------------------------------------------
class Bx5kSim(LedBoardSim):
    protocol = "bx5k"

    def __init__(self, *a: Any, **kw: Any) -> None:
        self._parser = bx5k.BxParser()
        self.areas: dict[int, bx5k.DynamicArea] = {}
        super().__init__(*a, **kw)

    def _reset_ram(self) -> None:
        self.areas.clear()

    def feed(self, data: bytes, reply: Callable[[bytes], None]) -> None:
        for pkt in self._parser.feed(data):
            if isinstance(pkt, Exception):
                self._rejected(pkt)
                if isinstance(pkt, bx5k.CrcError):
                    reply(bx5k.result(bx5k.ERR_CRC))
                continue
            try:
                answer = self._apply(pkt)
            except (ValueError, struct.error, IndexError) as exc:
                self._rejected(exc)
                reply(bx5k.result(bx5k.ERR_BAD_COMMAND))
                continue
            if answer is None:
                self._rejected(f"command {pkt.group:02X} {pkt.cmd:02X}")
                reply(bx5k.result(bx5k.ERR_BAD_COMMAND))
                continue
            self._good()
            if pkt.reply != bx5k.NO_REPLY:
                reply(answer)

    def _apply(self, pkt: bx5k.BxPacket) -> bytes | None:
        key = (pkt.group, pkt.cmd)
        if key == bx5k.PING:
            return bx5k.result()
        if key == bx5k.READ_STATUS:
            status = bytes([min(16, self.state.brightness * 16 // 100), 1]) + struct.pack(
                "<b", round(self.state.temperature_c))
            return bx5k.result(0, status)
        if key == bx5k.DYNAMIC_AREA:
            p = pkt.payload
            if p[0] == 0xFF:
                self.areas.clear()
                i = 1
            else:
                for area_id in p[1 : 1 + p[0]]:
                    self.areas.pop(area_id, None)
                i = 1 + p[0]
            count = p[i]
            i += 1
            new: list[bx5k.DynamicArea] = []
            for _ in range(count):
                area, used = bx5k.DynamicArea.decode(p[i:])
                new.append(area)
                i += used
            for area in new:  # all areas parsed before any is applied: a bad frame changes nothing
                self.areas[area.area_id] = area
            self._refresh()
            return bx5k.result()
        return None

    def _refresh(self) -> None:
        texts = [a.text.decode("gb2312", "replace") for _, a in sorted(self.areas.items())]
        effect = bx5k.EFFECT_NAMES.get(next(iter(self.areas.values())).effect, "hold") if self.areas else None
        self._show(" ".join(t for t in texts if t), mode=effect)


def make_board(protocol: str, state_dir: Path | None = None, **kw: Any) -> LedBoardSim:
    if protocol == "alpha":
        return AlphaSignSim(state_dir, **kw)
    if protocol == "bx5k":
        return Bx5kSim(state_dir, **kw)
    raise ValueError(f"unknown LED protocol {protocol!r} (alpha | bx5k)")
