"""The LED board's diagnostic: a test pattern in each colour (docs/operations.md).

An emergency message on the board is never covered: the pattern is refused as `busy`.
After the pattern the role sends its real content again at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from device_agents.host.diagnostics import DiagnosticError, Handler
from device_agents.led.driver import BoardContent, LedController
from protocol.ops import DiagnosticAction, LedTestPatternParams

TEST_PATTERN = (("KIỂM TRA BẢNG - TEST 0123456789", "red"), ("KIỂM TRA BẢNG - TEST 0123456789", "green"),
                ("KIỂM TRA BẢNG - TEST 0123456789", "amber"))


class LedDiagnostics:
    def __init__(self, board: LedController, *, busy: Callable[[], bool],
                 overwritten: Callable[[], None]) -> None:
        self.board = board
        self.busy = busy  # the board shows an emergency message
        self.overwritten = overwritten  # a diagnostic drew on the board: the role shows its content again
        self._hardware = asyncio.Lock()  # one hardware test at a time

    def actions(self) -> Mapping[DiagnosticAction, Handler]:
        return {DiagnosticAction.LED_TEST_PATTERN: self._led_test_pattern}

    async def _led_test_pattern(self, ref: str, p: LedTestPatternParams) -> dict[str, Any]:
        board = self.board
        if self.busy():
            raise DiagnosticError("busy", "the board shows an emergency message")
        shown: list[str] = []
        async with self._hardware:
            try:
                for text, color in TEST_PATTERN:
                    content = BoardContent(text=text, mode="hold", color=color, priority="filler",
                                           item_ids=(f"diag-{ref[:16]}",))
                    shown.append(await board.show(content))
                    await asyncio.sleep(p.seconds / len(TEST_PATTERN))
            finally:
                self.overwritten()
        return {"frames": len(shown), "shown": shown, "colors": [c for _, c in TEST_PATTERN],
                "protocol": getattr(board, "protocol", None)}
